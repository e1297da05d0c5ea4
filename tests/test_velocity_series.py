"""Velocity time series from a pair network: exactness, robustness, network building, laziness, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cryocube.testing import raise_if_dask_computes
from cryocube.velocity_series import (
    PairNetwork,
    band_width,
    component_labels,
    invert_pairs_kernel,
    invert_velocity,
    make_pairs,
    pair_design,
)

EPOCH = np.datetime64("2024-01-01", "ns")


def _dates(days) -> np.ndarray:
    return EPOCH + (np.asarray(days, dtype=np.float64) * 86400e9).astype("timedelta64[ns]")


def _pairs_dataset(d1, d2, vx, vy, vx_error=None, vy_error=None) -> xr.Dataset:
    """(pair, y, x) Dataset from arrays ``(P, ny, nx)``."""
    data = {"vx": (("pair", "y", "x"), vx), "vy": (("pair", "y", "x"), vy)}
    if vx_error is not None:
        data |= {"vx_error": (("pair", "y", "x"), vx_error), "vy_error": (("pair", "y", "x"), vy_error)}
    ny, nx = vx.shape[1:]
    return xr.Dataset(data, coords={"date1": ("pair", _dates(d1)), "date2": ("pair", _dates(d2)),
                                    "y": np.arange(ny) * -100.0, "x": np.arange(nx) * 100.0})


def _network(n_dates: int, neighbours: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    days = np.cumsum(rng.integers(4, 13, n_dates)).astype(float)
    i, j = np.triu_indices(n_dates, 1)
    keep = (j - i) <= neighbours
    return days[i[keep]], days[j[keep]]


# --------------------------------------------------------------------------- (a) exactness and NaN
def test_disconnected_groups_exact_inside_nan_between() -> None:
    # group A: dates 0, 6, 12, 18 (redundant); group B: 34 -> 46 and 40 -> 52, each alone and
    # each spanning two intervals (two components); group C: 60, 66, 72 (redundant).
    d1 = np.array([0, 6, 0, 12, 6, 34, 40, 60, 66, 60], float)
    d2 = np.array([6, 12, 12, 18, 18, 46, 52, 66, 72, 72], float)
    nodes, design, _, _ = pair_design(d1, d2)
    np.testing.assert_array_equal(nodes, [0, 6, 12, 18, 34, 40, 46, 52, 60, 66, 72])
    truth = np.array([100, 120, 90, 0, 280, 300, 310, 0, 50, 60], float)  # float32-exact values
    y = design @ truth
    ny, nx = 3, 4
    scale = 1.0 + np.arange(ny * nx).reshape(ny, nx)  # a different velocity field per pixel
    vx = y[:, None, None] * scale
    vy = -0.5 * y[:, None, None] * scale
    err = np.full_like(vx, 5.0)
    out = invert_velocity(_pairs_dataset(d1, d2, vx, vy, err, err)).compute()

    determined = np.array([1, 1, 1, 0, 0, 0, 0, 0, 1, 1], bool)
    expected_x = truth[:, None, None] * scale
    got = out.vx.values
    assert out.vx.dims == ("time", "y", "x")
    assert np.all(np.isnan(got[~determined]))
    np.testing.assert_allclose(got[determined], expected_x[determined], atol=1e-6, rtol=0)
    np.testing.assert_allclose(out.vy.values[determined], -0.5 * expected_x[determined], atol=1e-6, rtol=0)
    assert np.all(np.isfinite(out.vx_error.values[determined])) and np.all(np.isnan(out.vx_error.values[~determined]))
    # the single pair 40 -> 52 spans two intervals: both NaN (although 34 -> 46 overlaps them)
    t40 = np.flatnonzero(out.time_start.values == _dates([40])[0])[0]
    assert np.isnan(got[t40]).all() and np.isnan(got[t40 + 1]).all()
    assert (out.n_pairs.values == 10).all()
    assert (out.n_components.values == 4).all()
    assert (out.n_rejected.values == 0).all()
    np.testing.assert_array_equal(out.time_start.values, _dates(nodes[:-1]))
    np.testing.assert_array_equal(out.time_end.values, _dates(nodes[1:]))
    assert out.vx.attrs["units"] == "m/yr"


def test_graph_criterion_matches_pseudo_inverse() -> None:
    """Determined by the date graph <=> e_k in the row space of A (pinv test), on random networks and masks."""
    rng = np.random.default_rng(7)
    for _ in range(40):
        d1, d2 = _network(int(rng.integers(3, 9)), int(rng.integers(1, 4)), rng)
        nodes, design, node1, node2 = pair_design(d1, d2)
        mask = rng.random((d1.size, 16)) < 0.5
        labels = component_labels(mask, node1, node2, nodes.size)
        for i in range(mask.shape[1]):
            a = design[mask[:, i]]
            k = design.shape[1]
            proj = np.eye(k) - (np.linalg.pinv(a) @ a if a.size else 0.0)
            by_pinv = np.linalg.norm(proj, axis=0) < 1e-8
            by_graph = labels[1:, i] == labels[:-1, i]
            np.testing.assert_array_equal(by_graph, by_pinv)
        # and the kernel reports exactly those intervals
        truth = rng.integers(50, 150, design.shape[1]).astype(float)
        y = np.where(mask.T, design @ truth, np.nan)
        values, counts = invert_pairs_kernel(y, y, days1=d1, days2=d2, outlier_mad=None)
        np.testing.assert_array_equal(np.isfinite(values[:, 0]), (labels[1:] == labels[:-1]).T)
        np.testing.assert_allclose(values[:, 0][np.isfinite(values[:, 0])],
                                   np.broadcast_to(truth, values[:, 0].shape)[np.isfinite(values[:, 0])], atol=1e-6)
        np.testing.assert_array_equal(counts[:, 0], mask.sum(axis=0))


# --------------------------------------------------------------------------- (b) gross errors
def _seasonal_network(rng: np.random.Generator, n_dates: int, max_span: int, shape: tuple[int, int]):
    """A random pair network, its design matrix and interval velocities (m/yr) varying in time and space."""
    d1, d2 = _network(n_dates, max_span, rng)
    _, design, _, _ = pair_design(d1, d2)
    k = design.shape[1]
    truth = 500 + 200 * np.sin(np.arange(k)[:, None, None] / 3.0) + rng.normal(0, 30, (k, *shape))
    return d1, d2, design, truth


def test_gross_errors_removed_within_three_sigma() -> None:
    rng = np.random.default_rng(42)
    d1, d2, design, truth = _seasonal_network(rng, 16, 4, (12, 15))
    n_pairs, ny, nx = design.shape[0], *truth.shape[1:]
    truth_y = -0.3 * truth
    sigma_x = rng.uniform(5, 20, (n_pairs, ny, nx))
    sigma_y = sigma_x * rng.uniform(0.8, 1.2, (n_pairs, ny, nx))
    vx = np.einsum("pk,kyx->pyx", design, truth) + rng.normal(0, 1, sigma_x.shape) * sigma_x
    vy = np.einsum("pk,kyx->pyx", design, truth_y) + rng.normal(0, 1, sigma_y.shape) * sigma_y
    gross = rng.random(vx.shape) < 0.10
    vx[gross] += rng.choice([-1, 1], gross.sum()) * rng.uniform(300, 3000, gross.sum())
    vy[gross] += rng.choice([-1, 1], gross.sum()) * rng.uniform(300, 3000, gross.sum())
    out = invert_velocity(_pairs_dataset(d1, d2, vx, vy, sigma_x, sigma_y), outlier_mad=3.0).compute()
    for name, true in (("vx", truth), ("vy", truth_y)):
        est, err = out[name].values, out[f"{name}_error"].values
        ok = np.isfinite(est)
        assert ok.mean() > 0.9
        inside = np.abs(est[ok] - true[ok]) <= 3 * err[ok]
        assert inside.mean() >= 0.95, (name, inside.mean())
    assert out.n_rejected.values.mean() >= 0.8 * gross.sum(axis=0).mean()
    # without the robust step the gross errors ruin it
    plain = invert_velocity(_pairs_dataset(d1, d2, vx, vy, sigma_x, sigma_y), outlier_mad=None).compute()
    ok = np.isfinite(plain.vx.values)
    assert (np.abs(plain.vx.values[ok] - truth[ok]) <= 3 * plain.vx_error.values[ok]).mean() < 0.9


def test_pairs_of_different_errors_keep_their_good_neighbours() -> None:
    """Gross errors among pairs of 5-30 m/yr errors: the good pairs rejected stay near the 3-sigma rate.

    Each pair is tested against its own error (Baarda's w-test). With the earlier
    rule (a residual scale pooled over all pairs, the pair's error only a floor) a
    precise pair's gross error hid behind the pooled scale while the imprecise
    good pairs it dragged along were rejected: ~3 good pairs per pixel instead of
    ~0.5 (the benchmark's over-rejection).
    """
    rng = np.random.default_rng(11)
    d1, d2, design, truth = _seasonal_network(rng, 30, 5, (20, 20))
    n_pairs, ny, nx = design.shape[0], *truth.shape[1:]
    sigma = rng.uniform(5, 30, (n_pairs, ny, nx))
    vx = np.einsum("pk,kyx->pyx", design, truth) + rng.normal(0, 1, sigma.shape) * sigma
    vy = np.einsum("pk,kyx->pyx", design, -0.3 * truth) + rng.normal(0, 1, sigma.shape) * 1.2 * sigma
    gross = rng.random(vx.shape) < 0.04
    corrupted = vx.copy()
    corrupted[gross] += rng.choice([-1, 1], gross.sum()) * rng.uniform(300, 3000, gross.sum())
    clean = invert_velocity(_pairs_dataset(d1, d2, vx, vy, sigma, 1.2 * sigma)).compute()
    out = invert_velocity(_pairs_dataset(d1, d2, corrupted, vy, sigma, 1.2 * sigma)).compute()
    baseline = float(clean.n_rejected.mean())  # good pairs any 3-sigma test on vx and vy rejects
    assert baseline < 1.0
    # good pairs rejected (less any gross error kept) per pixel
    good_rejected = float((out.n_rejected.values - gross.sum(axis=0)).mean())
    assert good_rejected < baseline + 1.0, (good_rejected, baseline)
    inside = np.abs(out.vx.values - truth) <= 3 * out.vx_error.values
    assert inside.mean() > 0.98


def test_regularized_fills_gaps() -> None:
    d1 = np.array([0, 6, 0, 30, 36], float)
    d2 = np.array([6, 12, 12, 36, 42], float)
    nodes, design, _, _ = pair_design(d1, d2)
    truth = np.array([100, 100, 100, 100, 100], float)
    y = (design @ truth)[:, None, None] * np.ones((1, 2, 2))
    ds = _pairs_dataset(d1, d2, y, y)
    exact = invert_velocity(ds).compute()
    assert np.isnan(exact.vx.values[2]).all()  # 12 -> 30 unmeasured
    smooth = invert_velocity(ds, method="regularized", smoothing=10.0).compute()
    assert np.isfinite(smooth.vx.values).all()
    np.testing.assert_allclose(smooth.vx.values, 100.0, atol=1e-3)
    assert smooth.attrs["method"] == "regularized"


def test_regularized_pixel_without_pairs_is_nan() -> None:
    """A pixel without any pair (off the glacier): NaN, not a singular-matrix error for its whole chunk."""
    d1, d2 = np.array([0, 6, 0, 12], float), np.array([6, 12, 12, 18], float)  # even steps: R exactly singular
    y = np.full((4, 1, 2), 100.0)
    y[:, 0, 0] = np.nan
    out = invert_velocity(_pairs_dataset(d1, d2, y, y), method="regularized", smoothing=10.0).compute()
    assert np.isnan(out.vx.values[:, 0, 0]).all() and out.n_pairs.values[0, 0] == 0
    np.testing.assert_allclose(out.vx.values[:, 0, 1], 100.0, rtol=1e-6)


def test_band_width_is_the_longest_span() -> None:
    _, design, _, _ = pair_design(np.array([0.0, 6.0, 0.0, 6.0]), np.array([6.0, 12.0, 18.0, 24.0]))
    assert band_width(design) == 2  # 0 -> 18 and 6 -> 24 each span three intervals
    _, design, _, _ = pair_design(np.array([0.0, 6.0]), np.array([6.0, 12.0]))
    assert band_width(design) == 0


# --------------------------------------------------------------------------- (c) make_pairs
def _cube(days, platforms) -> xr.Dataset:
    return xr.Dataset({"hh": (("time", "y", "x"), np.zeros((len(days), 2, 2), np.float32))},
                      coords={"time": _dates(days), "platform": ("time", platforms)})


def test_make_pairs_two_sensors() -> None:
    s1 = _cube([0, 12, 24], ["sentinel-1a"] * 3)
    s2 = _cube([5, 10, 15, 40], ["sentinel-2a", "sentinel-2b", "sentinel-2a", "sentinel-2b"])
    net = make_pairs([s1, s2], min_days=1, max_days=12)
    assert isinstance(net, PairNetwork)
    t = net.table
    got = list(zip(t.reference_time, t.secondary_time, t.sensor, t.dt_days))
    expected = [(_dates([0])[0], _dates([12])[0], "sentinel-1", 12.0),
                (_dates([5])[0], _dates([10])[0], "sentinel-2", 5.0),
                (_dates([5])[0], _dates([15])[0], "sentinel-2", 10.0),
                (_dates([10])[0], _dates([15])[0], "sentinel-2", 5.0),
                (_dates([12])[0], _dates([24])[0], "sentinel-1", 12.0)]
    assert [(np.datetime64(a), np.datetime64(b), s, d) for a, b, s, d in got] == expected
    assert (t.reference_sensor == t.secondary_sensor).all()
    # merged scene indices: 0(s1 0) 1(s2 5) 2(s2 10) 3(s1 12) 4(s2 15) 5(s1 24) 6(s2 40)
    assert t.reference_index.tolist() == [0, 1, 1, 2, 3] and t.secondary_index.tolist() == [3, 2, 4, 4, 5]
    assert net.n_components == 3
    assert [[np.datetime64(d) for d in c] for c in net.components] == [
        list(_dates([0, 12, 24])), list(_dates([5, 10, 15])), list(_dates([40]))]
    np.testing.assert_array_equal(net.edges, [[0, 3], [1, 2], [1, 4], [2, 4], [3, 5]])
    assert "5 pairs" in net.summary() and "3 connected component" in net.summary()
    only_s2 = make_pairs([s1, s2], min_days=1, max_days=12, sensors=("sentinel-2",))
    assert set(only_s2.table.sensor) == {"sentinel-2"} and len(only_s2.table) == 3
    single = make_pairs(s1, min_days=20, max_days=30)
    assert len(single.table) == 1 and single.table.dt_days.iloc[0] == 24.0
    coords = net.pair_coords()
    assert set(coords) == {"date1", "date2", "dt_days", "sensor"}


def test_make_pairs_keeps_sar_pairs_within_one_orbit_and_for_source() -> None:
    s1 = _cube([0, 0.4, 6, 6.4, 12, 12.4], ["sentinel-1a"] * 6).assign_coords(relative_orbit=("time", [25, 90] * 3))
    s2 = _cube([3, 8], ["sentinel-2a", "sentinel-2b"]).assign_coords(relative_orbit=("time", [68, 25]))
    net = make_pairs([s1, s2], min_days=1, max_days=12)
    s1_pairs = net.table[net.table.sensor == "sentinel-1"]
    orbit = net.scenes.relative_orbit.to_numpy()
    assert (orbit[s1_pairs.reference_index] == orbit[s1_pairs.secondary_index]).all() and len(s1_pairs) == 6
    assert len(net.table[net.table.sensor == "sentinel-2"]) == 1  # optical pairs may cross orbits
    own = net.for_source(1)
    assert own[["reference", "secondary"]].values.tolist() == [[0, 1]]
    with pytest.raises(ValueError, match="no pair comes from cube 2"):
        net.for_source(2)


def test_time_step_connects_sensors_whose_dates_never_coincide() -> None:
    """Two interleaved sub-networks (dates 0.4 day apart): separate nodes leave gaps; a 6-day grid joins them exactly."""
    a = np.arange(0, 48, 6.0)
    d1 = np.concatenate([a[:-1], a[:-2] + 0.4])
    d2 = np.concatenate([a[1:], a[2:] + 0.4])
    truth = 100.0
    vx = np.full((d1.size, 1, 1), truth, np.float32)
    ds = _pairs_dataset(d1, d2, vx, vx)
    separate = invert_velocity(ds, outlier_mad=None).compute()
    assert np.isnan(separate.vx.values).any()  # intervals between the two sub-networks' nodes
    joined = invert_velocity(ds, outlier_mad=None, time_step_days=6).compute()
    np.testing.assert_allclose(joined.vx.values, truth, rtol=1e-5)
    assert joined.sizes["time"] == a.size - 1 and joined.attrs["time_step_days"] == 6.0
    with pytest.raises(ValueError, match="time_step_days must be a positive"):
        invert_velocity(ds, time_step_days=0)
    with pytest.raises(ValueError, match="every pair is shorter than half a step"):
        invert_velocity(ds, time_step_days=100)


def test_make_pairs_errors() -> None:
    s1 = _cube([0, 12, 24], ["sentinel-1a"] * 3)
    with pytest.raises(ValueError, match="sensors"):
        make_pairs(s1, sensors=("sentinel-2",))
    with pytest.raises(ValueError, match="no pair"):
        make_pairs(s1, min_days=1, max_days=5)
    with pytest.raises(ValueError, match="min_days"):
        make_pairs(s1, min_days=10, max_days=5)


# --------------------------------------------------------------------------- (d) laziness and chunks
def test_lazy_and_chunk_independent() -> None:
    rng = np.random.default_rng(3)
    d1, d2 = _network(9, 3, rng)
    _, design, _, _ = pair_design(d1, d2)
    ny, nx = 11, 13
    truth = rng.uniform(50, 500, (design.shape[1], ny, nx))
    sigma = rng.uniform(2, 10, (d1.size, ny, nx))
    vx = np.einsum("pk,kyx->pyx", design, truth) + rng.normal(0, 1, sigma.shape) * sigma
    vx[rng.random(vx.shape) < 0.2] = np.nan
    vx[rng.random(vx.shape) < 0.05] += 5000.0
    ds = _pairs_dataset(d1, d2, vx, 0.5 * vx, sigma, sigma)
    reference = invert_velocity(ds).compute()
    # Dataset.chunk also chunks the small date coordinates; keep them in memory (as open_zarr does)
    chunked = ds.chunk({"pair": 7, "y": 4, "x": 5}).assign_coords(date1=ds.date1, date2=ds.date2)
    with raise_if_dask_computes():
        lazy = invert_velocity(chunked)
    assert lazy.vx.chunks is not None
    result = lazy.compute()
    xr.testing.assert_identical(result, reference)
    assert np.isnan(reference.vx.values).any() and np.isfinite(reference.vx.values).any()


# --------------------------------------------------------------------------- (e) errors
def test_clear_errors() -> None:
    d1, d2 = np.array([0.0, 6.0]), np.array([6.0, 12.0])
    y = np.ones((2, 2, 2))
    good = _pairs_dataset(d1, d2, y, y)
    with pytest.raises(ValueError, match="date1"):
        invert_velocity(good.drop_vars("date1"))
    with pytest.raises(ValueError, match="date2"):
        invert_velocity(good.drop_vars("date2"))
    with pytest.raises(ValueError, match="date2 must follow date1"):
        invert_velocity(_pairs_dataset(np.array([0.0, 6.0]), np.array([6.0, 6.0]), y, y))
    with pytest.raises(ValueError, match="no pairs"):
        invert_velocity(good.isel(pair=slice(0, 0)))
    with pytest.raises(ValueError, match="method"):
        invert_velocity(good, method="svd")
    with pytest.raises(ValueError, match="smoothing"):
        invert_velocity(good, method="regularized")
    with pytest.raises(ValueError, match="vx_error"):
        invert_velocity(good.assign(vx_error=good.vx))
    with pytest.raises(ValueError, match="'vy'"):
        invert_velocity(good.drop_vars("vy"))
    with pytest.raises(ValueError, match="outlier_mad"):
        invert_velocity(good, outlier_mad=-1)
    with pytest.raises(ValueError, match="min_pairs"):
        invert_velocity(good, min_pairs=0)
