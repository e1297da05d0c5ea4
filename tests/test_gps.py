"""GPS projection, CCI-style validation table and surge detection (cryocube.gps)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cryocube.gps import (DAYS_PER_YEAR, detect_surge, project_gps, surge_kernel, synthetic_surge_series,
                          validation_stats)
from cryocube.testing import raise_if_dask_computes

C30, S30 = math.sqrt(3) / 2, 0.5  # cos 30, sin 30
R2 = math.sqrt(0.5)  # cos 45 = sin 45


# =========================================================================== project_gps
# u = (cos th cos ph, cos th sin ph, sin th); v_los = u . v; v_az = ve sin ph - vn cos ph (flight at ph - 90)
@pytest.mark.parametrize(("phi", "theta", "v", "expected"), [
    # phi=0, theta=0: u = (1, 0, 0) -> v_los = ve = 100; flight at -90 (South) -> v_az = -vn = -50
    (0.0, 0.0, (100.0, 50.0, -2.0), (100.0, -50.0)),
    # phi=90, theta=0: u = (0, 1, 0) -> v_los = vn = 50; flight at 0 (East) -> v_az = ve = 100
    (90.0, 0.0, (100.0, 50.0, -2.0), (50.0, 100.0)),
    # phi=180, theta=90: u = (0, 0, 1) -> v_los = vu = -2; flight at 90 (North) -> v_az = vn = 50
    (180.0, 90.0, (100.0, 50.0, -2.0), (-2.0, 50.0)),
    # phi=180, theta=30: u = (-cos30, 0, sin30) -> v_los = -86.6025 + 0 - 1 = -87.6025; v_az = vn = 50
    (180.0, 30.0, (100.0, 50.0, -2.0), (-100 * C30 - 1.0, 50.0)),
    # phi=45, theta=60: u = (0.5*R2, 0.5*R2, cos30) -> v_los = 35.355 - 35.355 + 10*0.86603 = 8.6603
    #   flight at -45: (R2, -R2) -> v_az = 100*R2 + 100*R2 = 141.421
    (45.0, 60.0, (100.0, -100.0, 10.0), (10 * C30, 200 * R2)),
    # phi=270, theta=45: u = (0, -R2, R2) -> v_los = -20*R2 + 30*R2 = 7.0711; flight at 180 (West) -> v_az = -ve = -10
    (270.0, 45.0, (10.0, 20.0, 30.0), (10 * R2, -10.0)),
    # phi=-90 is phi=270
    (-90.0, 45.0, (10.0, 20.0, 30.0), (10 * R2, -10.0)),
])
def test_project_gps_hand_computed(phi, theta, v, expected):
    v_los, v_az = project_gps(*v, phi_deg=phi, theta_deg=theta)
    np.testing.assert_allclose([v_los, v_az], expected, atol=1e-9)


def test_project_gps_greenland_ascending_descending():
    # Ascending S1 over Greenland: heading ~345 deg clockwise from North = 105 deg from East (NNW), looks right
    # (ENE, 15 deg), so target->radar points to 195 deg: phi = 105 + 90 = 195. Descending: flies SSW (255 deg),
    # looks WNW (165 deg), target->radar 345 deg. theta = 50 deg (40 deg incidence).
    # Ice flowing West at 100 m/yr: v_los = -100 cos50 cos195 = -100 * 0.642788 * -0.965926 = +62.089 (towards
    # the radar, West of the target); descending -100 * 0.642788 * 0.965926 = -62.089.
    # v_az = ve sin(phi): -100 * sin195 = -100 * -0.258819 = +25.88 (NNW flight has a westward part); the same
    # for descending (sin345 = -0.258819; SSW flight also has a westward part).
    ve, vn, vu = -100.0, 0.0, 0.0
    los_a, az_a = project_gps(ve, vn, vu, phi_deg=195.0, theta_deg=50.0)
    los_d, az_d = project_gps(ve, vn, vu, phi_deg=345.0, theta_deg=50.0)
    np.testing.assert_allclose([los_a, az_a, los_d, az_d], [62.0885, 25.8819, -62.0885, 25.8819], atol=1e-3)
    # flight direction = phi - 90: a northward-moving point is seen moving along track on the ascending pass
    assert project_gps(0.0, 1.0, 0.0, phi_deg=195.0, theta_deg=50.0)[1] > 0.9
    assert project_gps(0.0, 1.0, 0.0, phi_deg=345.0, theta_deg=50.0)[1] < -0.9
    # the satellite flying North looking East: phi = 180, flight (phi - 90) = North
    assert project_gps(0.0, 1.0, 0.0, phi_deg=180.0, theta_deg=40.0)[1] == pytest.approx(1.0)


def test_project_gps_broadcasts_numpy_and_xarray():
    ve = np.array([100.0, 0.0, 10.0])
    los, az = project_gps(ve, 0.0, 0.0, phi_deg=np.array([0.0, 90.0, 180.0]), theta_deg=0.0)
    np.testing.assert_allclose(los, [100.0, 0.0, -10.0], atol=1e-12)
    np.testing.assert_allclose(az, [0.0, 0.0, 0.0], atol=1e-12)
    st = xr.DataArray([100.0, -50.0], dims="station")
    phi = xr.DataArray([195.0, 345.0], dims="orbit")
    los, az = project_gps(st, 0 * st, 0 * st, phi_deg=phi, theta_deg=50.0)
    assert los.dims == ("station", "orbit") and los.shape == (2, 2)
    np.testing.assert_allclose(los.values[0], [-62.0885, 62.0885], atol=1e-3)


def test_project_gps_errors():
    with pytest.raises(ValueError, match="theta_deg"):
        project_gps(1.0, 0.0, 0.0, phi_deg=0.0, theta_deg=95.0)
    with pytest.raises(ValueError, match="phi_deg"):
        project_gps(1.0, 0.0, 0.0, phi_deg=np.nan, theta_deg=30.0)


# =========================================================================== validation_stats
def _product_and_gps():
    x = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    y = np.array([30.0, 20.0, 10.0, 0.0])  # descending, as rasters usually are
    shape = (4, 5)
    vx = np.full(shape, 500.0)
    vy = np.full(shape, -300.0)
    v = np.full(shape, 600.0)
    # five stations, each off its pixel centre by less than half a pixel
    gps = pd.DataFrame({
        "station": ["S1", "S2", "S3", "S4", "S5"],
        "x": [1.0, 11.0, 19.0, 38.0, 42.0],      # -> columns 0, 1, 2, 4, 4
        "y": [29.0, 21.0, 12.0, 3.0, 17.0],      # -> rows    0, 1, 2, 3, 1
        "vx": [100.0, 200.0, 300.0, 400.0, 500.0],
        "vy": [-10.0, -20.0, -30.0, -40.0, -50.0],
        "v": [101.0, 201.0, np.nan, 401.0, 501.0],
    })
    rows, cols = [0, 1, 2, 3, 1], [0, 1, 2, 4, 4]
    d_vx = [1.0, 3.0, -2.0, 4.0, 10.0]   # SAR - GPS
    d_vy = [0.0, 0.0, 1.0, -1.0, 5.0]
    d_v = [2.0, 4.0, 99.0, 6.0, 8.0]     # the third has no GPS value
    for k, (r, c) in enumerate(zip(rows, cols)):
        vx[r, c] = gps["vx"][k] + d_vx[k]
        vy[r, c] = gps["vy"][k] + d_vy[k]
        v[r, c] = (gps["v"][k] if np.isfinite(gps["v"][k]) else 0.0) + d_v[k]
    # stable ground: row 3, columns 0..3 (vx: 1, 2, 3, 10; vy: 0, 0, 4, -4) plus one NaN pixel at (2, 0)
    vx[3, :4] = [1.0, 2.0, 3.0, 10.0]
    vy[3, :4] = [0.0, 0.0, 4.0, -4.0]
    v[3, :4] = [1.0, 2.0, 5.0, 10.8]
    vx[2, 0] = vy[2, 0] = v[2, 0] = np.nan
    mask = np.zeros(shape, dtype=bool)
    mask[3, :4] = True
    mask[2, 0] = True
    coords = {"y": y, "x": x}
    product = xr.Dataset({k: (("y", "x"), a) for k, a in {"vx": vx, "vy": vy, "v": v}.items()}, coords=coords)
    return product, gps, xr.DataArray(mask, dims=("y", "x"), coords=coords)


def test_validation_stats_hand_checked():
    product, gps, mask = _product_and_gps()
    table = validation_stats(product, gps_points=gps, stable_mask=mask)
    assert list(table.index) == ["vx", "vy", "v"]
    assert list(table.columns) == [("SAR-GPS", "N"), ("SAR-GPS", "median"), ("SAR-GPS", "MAD"),
                                   ("stable", "N"), ("stable", "median"), ("stable", "MAD")]
    # vx: d = [1, 3, -2, 4, 10] -> sorted [-2, 1, 3, 4, 10], median 3; |d - 3| = [2, 0, 5, 1, 7] -> MAD 2
    # vy: d = [0, 0, 1, -1, 5] -> median 0; |d| = [0, 0, 1, 1, 5] -> MAD 1
    # v:  d = [2, 4, 6, 8] (S3 has no GPS) -> median 5; |d - 5| = [3, 1, 1, 3] -> MAD 2
    # stable vx: [1, 2, 3, 10] (+ a NaN pixel) -> median 2.5; |.| = [1.5, .5, .5, 7.5] -> MAD 1.0
    # stable vy: [0, 0, 4, -4] -> median 0; |.| = [0, 0, 4, 4] -> MAD 2.0
    # stable v:  [1, 2, 5, 10.8] -> median 3.5; |.| = [2.5, 1.5, 1.5, 7.3] -> MAD 2.0
    expected = pd.DataFrame(
        [[5, 3.0, 2.0, 4, 2.5, 1.0], [5, 0.0, 1.0, 4, 0.0, 2.0], [4, 5.0, 2.0, 4, 3.5, 2.0]],
        index=pd.Index(["vx", "vy", "v"], name="component"), columns=table.columns)
    pd.testing.assert_frame_equal(table, expected)
    assert table.loc["vx", ("SAR-GPS", "median")] == 3.0


def test_validation_stats_optional_parts_window_and_los():
    product, gps, mask = _product_and_gps()
    only_stable = validation_stats(product, stable_mask=mask, components=["vx"])
    assert only_stable.loc["vx", ("SAR-GPS", "N")] == 0 and np.isnan(only_stable.loc["vx", ("SAR-GPS", "median")])
    assert only_stable.loc["vx", ("stable", "median")] == 2.5
    only_gps = validation_stats(product, gps_points=gps, components=["vx"])
    assert only_gps.loc["vx", ("stable", "N")] == 0
    # 3 x 3 window around S2 (row 1, col 1): 8 pixels of 500 and one of 203 -> median 500, d = 300
    windowed = validation_stats(product, gps_points=gps.iloc[[1]], components=["vx"], window_px=3)
    assert windowed.loc["vx", ("SAR-GPS", "median")] == 300.0
    # line-of-sight products: GPS projected with project_gps, same table
    los = product.rename(vx="v_los", vy="v_azimuth")
    g = gps.assign(v_los=gps["vx"], v_azimuth=gps["vy"])
    t = validation_stats(los, gps_points=g, components=("v_los", "v_azimuth"))
    assert t.loc["v_los", ("SAR-GPS", "median")] == 3.0


def test_validation_stats_dask_product():
    product, gps, mask = _product_and_gps()
    table = validation_stats(product.chunk({"y": 3, "x": 2}), gps_points=gps, stable_mask=mask)
    pd.testing.assert_frame_equal(table, validation_stats(product, gps_points=gps, stable_mask=mask))


def test_validation_stats_errors():
    product, gps, mask = _product_and_gps()
    with pytest.raises(ValueError, match=r"components \['u'\] not in product"):
        validation_stats(product, gps_points=gps, components=["vx", "u"])
    with pytest.raises(ValueError, match=r"gps_points lacks columns \['vy'\]"):
        validation_stats(product, gps_points=gps.drop(columns="vy"))
    far = gps.copy()
    far.loc[2, "x"] = 46.0  # the grid's x edges are -5 and 45
    with pytest.raises(ValueError, match=r"outside the product grid.*S3 \(x=46.0\)"):
        validation_stats(product, gps_points=far)
    other = mask.assign_coords(x=mask.x + 5.0)
    with pytest.raises(ValueError, match="stable_mask is on another grid"):
        validation_stats(product, stable_mask=other)
    with pytest.raises(ValueError, match="stable_mask is on another grid"):
        validation_stats(product, stable_mask=mask.isel(x=slice(0, 3)))
    with pytest.raises(ValueError, match="stable_mask must be boolean"):
        validation_stats(product, stable_mask=mask.astype(float))
    with pytest.raises(ValueError, match="window_px"):
        validation_stats(product, gps_points=gps, window_px=2)
    with pytest.raises(ValueError, match=r"product\['vx'\] has dims"):
        validation_stats(product.expand_dims(time=2), gps_points=gps)


# =========================================================================== surge detection
def _days_off(value, date):
    return float((np.datetime64(value, "ns") - np.datetime64(date, "ns")) / np.timedelta64(1, "D"))


@pytest.mark.parametrize("seed", range(5))
def test_synthetic_surge_onset_and_end_within_a_month(seed):
    series = synthetic_surge_series(seed=seed)  # 1 -> 10 -> 1 m/day, 2023-06-01 .. 2025-06-01, 6-12 day sampling
    assert np.isnan(series.values).any()  # gaps
    out = detect_surge(series)
    assert int(out.surge_count) == 1
    assert abs(_days_off(out.surge_onset.values, series.attrs["true_onset"])) <= 30
    assert abs(_days_off(out.surge_end.values, series.attrs["true_end"])) <= 30
    assert abs(_days_off(out.surge_peak_date.values, series.attrs["true_peak"])) <= 60
    assert float(out.surge_peak_speed) / DAYS_PER_YEAR > 9.0
    assert float(out.quiescent_speed) / DAYS_PER_YEAR == pytest.approx(1.0, abs=0.1)
    assert out.surge_peak_speed.attrs["units"] == "m/yr"


def _series(days, speed_m_per_day, start="2022-01-01"):
    t = np.datetime64(start, "ns") + (np.asarray(days) * 86400e9).astype("timedelta64[ns]")
    return xr.DataArray(np.asarray(speed_m_per_day) * DAYS_PER_YEAR, dims="time", coords={"time": t})


def test_quiescent_and_summer_speedup_are_not_surges():
    rng = np.random.default_rng(1)
    days = np.arange(0, 4 * 365, 12.0)
    quiet = detect_surge(_series(days, 1.0 + 0.05 * rng.standard_normal(days.size)))
    assert int(quiet.surge_count) == 0 and np.isnat(quiet.surge_onset.values) and np.isnan(quiet.surge_peak_speed)
    # summer speed-up: speed doubles (1 -> 2 m/day) every June-August; below factor * quiescent = 3 m/day
    doy = days % 365
    summer = 1.0 + np.where((doy > 150) & (doy < 240), np.sin(np.pi * (doy - 150) / 90), 0.0)
    assert int(detect_surge(_series(days, summer)).surge_count) == 0
    # a fast but short pulse (5 m/day for ~40 days) is below min_duration_days (90) -> not a surge ...
    pulse = np.where((days >= 400) & (days <= 440), 5.0, 1.0)
    assert int(detect_surge(_series(days, pulse)).surge_count) == 0
    # ... unless min_duration_days allows it
    short = detect_surge(_series(days, pulse), min_duration_days=20)  # core: days 408, 420, 432 -> 24 days
    assert int(short.surge_count) == 1
    # onset is interpolated between day 396 (1 m/day) and 408 (5): 1.25 is crossed at 396 + 12 * 0.25/4 = 396.75
    assert _days_off(short.surge_onset.values, "2022-01-01") == pytest.approx(396.75)


def test_surge_at_record_edges_and_two_surges():
    days = np.arange(0, 1000, 10.0)
    # record starts mid-surge: onset unknown (NaT), end found
    speed = np.where(days < 200, 8.0, 1.0)
    out = detect_surge(_series(days, speed))
    assert int(out.surge_count) == 1 and np.isnat(out.surge_onset.values) and not np.isnat(out.surge_end.values)
    # two surges: the stronger is reported, both counted
    speed = np.ones(days.size)
    speed[(days >= 100) & (days < 250)] = 5.0
    speed[(days >= 600) & (days < 800)] = 9.0
    out = detect_surge(_series(days, speed))
    assert int(out.surge_count) == 2
    assert float(out.surge_peak_speed) == pytest.approx(9.0 * DAYS_PER_YEAR)
    assert 590 <= _days_off(out.surge_onset.values, "2022-01-01") <= 600


def _cube():
    """(time, y, x): surging pixels (varied timing, amplitude, noise), quiescent, stable ground and all-NaN pixels."""
    t = synthetic_surge_series(seed=0).time
    days = ((t - t[0]) / np.timedelta64(1, "D")).values
    rng = np.random.default_rng(3)
    data = np.empty((t.size, 5, 7))
    for k in range(35):
        j, i = divmod(k, 7)
        if k % 5 == 0:
            data[:, j, i] = 1.0 + 0.05 * rng.standard_normal(t.size)  # quiescent, 1 m/day
        elif k % 7 == 3:
            data[:, j, i] = 0.03 * rng.random(t.size)  # stable ground: noise of a few m/yr
        else:
            on = 400 + 20 * k
            data[:, j, i] = np.interp(days, [on, on + 270, on + 730], [1.0, 5.0 + k % 6, 1.0]) \
                * (1 + 0.05 * rng.standard_normal(t.size))
    data *= DAYS_PER_YEAR
    data[rng.random(data.shape) < 0.1] = np.nan
    data[:, 4, 6] = np.nan
    return xr.DataArray(data, dims=("time", "y", "x"),
                        coords={"time": t, "y": np.arange(5) * -30.0, "x": np.arange(7) * 30.0}, name="v")


def test_detect_surge_lazy_and_chunk_independent():
    cube = _cube()
    expected = detect_surge(cube)
    assert expected.surge_onset.dims == ("y", "x")
    assert int(expected.surge_count.sum()) > 10
    counts = expected.surge_count.values.ravel()
    assert (counts[::5] == 0).all() and (counts[3::7] == 0).all()  # quiescent and stable pixels
    assert counts.sum() == 35 - 7 - 5 + 1 - 1  # all others surge (k=10 is both quiescent and 3 mod 7; (4,6) is NaN)
    for chunks in ({"y": -1, "x": -1}, {"y": 2, "x": 3}, {"y": 1, "x": 1}):
        ds = xr.Dataset({"v": cube.chunk({"time": -1, **chunks})})
        with raise_if_dask_computes():
            lazy = detect_surge(ds)
        assert lazy.surge_onset.chunks is not None
        xr.testing.assert_identical(lazy.compute(), expected)


def test_detect_surge_errors():
    series = synthetic_surge_series(seed=0)
    with pytest.raises(ValueError, match="speed_var='speed' not in velocity_series"):
        detect_surge(series.to_dataset(), speed_var="speed")
    with pytest.raises(ValueError, match="'time' is split into 2 chunks"):
        detect_surge(series.chunk({"time": 100}))
    with pytest.raises(ValueError, match="no 'date' dimension"):
        detect_surge(series, dim="date")
    with pytest.raises(ValueError, match="datetime64 'time'"):
        detect_surge(series.assign_coords(time=np.arange(series.size)))
    with pytest.raises(ValueError, match="strictly increasing"):
        detect_surge(series.isel(time=slice(None, None, -1)))
    with pytest.raises(ValueError, match="factor must be > 1"):
        detect_surge(series, factor=1.0)
    with pytest.raises(ValueError, match="quiescent_quantile"):
        detect_surge(series, quiescent_quantile=1.5)


def test_surge_kernel_numpy_shapes():
    days = np.arange(0, 800, 10.0)
    speed = np.where((days > 200) & (days < 500), 3650.0, 365.0)
    stack = np.stack([speed, speed * 0.5, np.full(days.size, np.nan)], axis=1)  # (time, 3)
    onset, end, peak, peak_t, count, q = surge_kernel(stack, days)
    # second series: q = 182.5 m/yr, core level max(3 q, 365.25) = 547.5 < 1825 -> a surge as well
    assert onset.shape == (3,) and list(count) == [1, 1, 0]
    # onset between day 200 (365) and 210 (3650): 1.25 q = 456.25 is crossed at 200 + 10 * 91.25 / 3285
    assert onset[0] == pytest.approx(200 + 10 * 91.25 / 3285)
    assert np.isnan(onset[2]) and np.isnan(q[2])
