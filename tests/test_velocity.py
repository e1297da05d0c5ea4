"""offsets_to_velocity and calibrate_stable against hand-made fields with known answers."""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

from cryocube.testing import raise_if_dask_computes
from cryocube.velocity import calibrate_stable, offsets_to_velocity

NY, NX, SPACING = 40, 50, 100.0
X = -200_000.0 + SPACING * np.arange(NX)
Y = -2_200_000.0 - SPACING * np.arange(NY)  # y decreasing, as in a north-up raster
K = 365.25 / 12.0  # m over 12 days -> m/yr


def make_offsets(dx: np.ndarray, dy: np.ndarray, dx_error: np.ndarray | float = 0.1,
                 dy_error: np.ndarray | float = 0.2, flag: np.ndarray | None = None, *,
                 crs: str | None = "EPSG:3413", times: bool = True) -> xr.Dataset:
    """An offset-tracking result on the 40 x 50 test grid, 12 days apart."""
    def var(values: np.ndarray | float, dtype: type = np.float32) -> xr.DataArray:
        return xr.DataArray(np.broadcast_to(values, (NY, NX)).astype(dtype), dims=("y", "x"), attrs={"units": "m"})

    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        dict(dx=var(dx), dy=var(dy), dx_error=var(dx_error), dy_error=var(dy_error),
             ncc=var(rng.uniform(0.3, 1.0, (NY, NX))), snr=var(rng.uniform(1.2, 5, (NY, NX))),
             valid_fraction=var(1.0), flag=var(0 if flag is None else flag, np.uint8)),
        coords={"y": Y, "x": X},
        attrs={"reference_sensor": "sentinel-1a", "secondary_sensor": "sentinel-1b", "cryocube_parameters": "{}"},
    )
    if times:
        ds.attrs.update(reference_time="2019-06-01T12:00:00", secondary_time="2019-06-13T12:00:00")
    return ds if crs is None else ds.rio.write_crs(crs)


@pytest.fixture
def offsets() -> xr.Dataset:
    rng = np.random.default_rng(1)
    dx = rng.normal(0, 5, (NY, NX))
    dy = rng.normal(0, 5, (NY, NX))
    dx_error = rng.uniform(0.05, 1, (NY, NX))
    dy_error = rng.uniform(0.05, 1, (NY, NX))
    dx[3, 4], dy[3, 4], dx_error[3, 4], dy_error[3, 4] = 3.0, 4.0, 0.6, 0.3  # a 3-4-5 triangle
    dx[5, 6], dy[5, 6], dx_error[5, 6], dy_error[5, 6] = 0.0, 0.0, 0.2, 0.5  # at rest
    dx[7, 8] = np.nan  # rejected point with finite errors
    flag = np.zeros((NY, NX), np.uint8)
    flag[7, 8] = 2
    return make_offsets(dx, dy, dx_error, dy_error, flag)


# --------------------------------------------------------------------------- offsets_to_velocity
def test_velocity_matches_hand_formulas(offsets: xr.Dataset) -> None:
    vel = offsets_to_velocity(offsets)
    dx, dy = offsets.dx.values.astype(float), offsets.dy.values.astype(float)
    ex, ey = offsets.dx_error.values.astype(float), offsets.dy_error.values.astype(float)
    np.testing.assert_allclose(vel.vx.values, dx / 12 * 365.25, rtol=1e-6)
    np.testing.assert_allclose(vel.vy.values, dy / 12 * 365.25, rtol=1e-6)
    np.testing.assert_allclose(vel.v.values, np.hypot(dx, dy) * K, rtol=1e-6)
    np.testing.assert_allclose(vel.vx_error.values, ex * K, rtol=1e-6)
    np.testing.assert_allclose(vel.vy_error.values, ey * K, rtol=1e-6)
    vx, vy = dx * K, dy * K
    with np.errstate(invalid="ignore"):  # 0 / 0 at rest, excluded below
        expected = np.sqrt((vx * ex * K) ** 2 + (vy * ey * K) ** 2) / np.hypot(vx, vy)
    moving = np.isfinite(vx) & (np.hypot(vx, vy) > 0)
    np.testing.assert_allclose(vel.v_error.values[moving], expected[moving], rtol=1e-5)

    # Points worked by hand: (3, 4, 5) m with errors (0.6, 0.3) m; at rest with errors (0.2, 0.5) m.
    assert vel.v.values[3, 4] == pytest.approx(5 * K, rel=1e-6)
    assert vel.v_error.values[3, 4] == pytest.approx(K * np.sqrt(1.8**2 + 1.2**2) / 5, rel=1e-6)
    assert vel.v.values[5, 6] == 0
    assert vel.v_error.values[5, 6] == pytest.approx(0.5 * K, rel=1e-6)
    # NaN stays NaN, although its errors are finite.
    for name in ("vx", "v", "v_error"):
        assert np.isnan(vel[name].values[7, 8]), name
    assert np.isfinite(vel.vy.values[7, 8])


def test_velocity_output_metadata(offsets: xr.Dataset) -> None:
    vel = offsets_to_velocity(offsets)
    for name in ("vx", "vy", "v", "vx_error", "vy_error", "v_error"):
        assert vel[name].dtype == np.float32, name
        assert vel[name].attrs["units"] == "m/yr", name
        assert vel[name].attrs["long_name"], name
    for name in ("ncc", "snr", "valid_fraction", "flag"):
        xr.testing.assert_identical(vel[name], offsets[name])
    assert vel.flag.dtype == np.uint8 and vel.flag.values[7, 8] == 2
    assert "dx" not in vel and "dx_error" not in vel
    assert vel.attrs["dt_days"] == 12.0
    assert vel.attrs["reference_time"] == "2019-06-01T12:00:00"
    assert vel.attrs["secondary_time"] == "2019-06-13T12:00:00"
    assert vel.attrs["reference_sensor"] == "sentinel-1a" and vel.attrs["secondary_sensor"] == "sentinel-1b"
    assert vel.attrs["cryocube_parameters"] == "{}"  # the input's other attrs are kept
    assert vel.rio.crs.to_epsg() == 3413
    np.testing.assert_array_equal(vel.y.values, Y)


def test_dt_days_argument_overrides_attrs(offsets: xr.Dataset) -> None:
    vel = offsets_to_velocity(offsets, dt_days=24.0)
    assert vel.attrs["dt_days"] == 24.0
    np.testing.assert_allclose(vel.vx.values, offsets.dx.values / 24 * 365.25, rtol=1e-6)
    untimed = make_offsets(2.0, 1.0, times=False)
    assert offsets_to_velocity(untimed, dt_days=6).vx.values[0, 0] == pytest.approx(2 / 6 * 365.25)


def test_dt_from_timezone_aware_times() -> None:
    ds = make_offsets(1.0, 0.0)
    ds.attrs.update(reference_time="2019-06-01T00:00:00Z", secondary_time="2019-06-01T18:00:00+00:00")
    assert offsets_to_velocity(ds).attrs["dt_days"] == pytest.approx(0.75)


@pytest.mark.parametrize("dt_days", [0.0, -12.0, np.nan, np.inf])
def test_bad_dt_days_raises(offsets: xr.Dataset, dt_days: float) -> None:
    with pytest.raises(ValueError, match="dt_days"):
        offsets_to_velocity(offsets, dt_days=dt_days)


def test_missing_or_reversed_times_raise() -> None:
    with pytest.raises(ValueError, match="dt_days"):
        offsets_to_velocity(make_offsets(1.0, 1.0, times=False))
    reversed_ = make_offsets(1.0, 1.0)
    reversed_.attrs.update(reference_time="2019-06-13", secondary_time="2019-06-01")
    with pytest.raises(ValueError, match="dt_days"):
        offsets_to_velocity(reversed_)


@pytest.mark.parametrize("crs", ["EPSG:4326", None, "EPSG:2229"])  # degrees, none, US survey feet
def test_crs_not_projected_metres_raises(crs: str | None) -> None:
    with pytest.raises(ValueError, match="projected CRS in metres"):
        offsets_to_velocity(make_offsets(1.0, 1.0, crs=crs))


def test_dask_input_stays_lazy_and_matches_numpy(offsets: xr.Dataset) -> None:
    chunked = offsets.chunk({"y": 13, "x": 17})
    with raise_if_dask_computes():
        vel = offsets_to_velocity(chunked)
    for name in vel.data_vars:
        assert isinstance(vel[name].data, dsa.Array), name
    xr.testing.assert_identical(vel.compute(), offsets_to_velocity(offsets))


# --------------------------------------------------------------------------- calibrate_stable
GLACIER = (slice(None), slice(20, 36))  # columns 20..35 move fast


def biased_velocity(bias: tuple[float, float], *, glacier: tuple[slice, slice] = GLACIER,
                    glacier_speed: float = 500.0, noise: float = 0.5, seed: int = 2) -> tuple[xr.Dataset, np.ndarray]:
    """Velocity with ``bias`` (m/yr) everywhere plus noise; a glacier flows along x; and its stable ground."""
    rng = np.random.default_rng(seed)
    vx = bias[0] + rng.normal(0, noise, (NY, NX))
    vy = bias[1] + rng.normal(0, noise, (NY, NX))
    vx[glacier] += glacier_speed
    stable = np.ones((NY, NX), bool)
    stable[glacier] = False
    return offsets_to_velocity(make_offsets(vx / K, vy / K, 0.1, 0.1)), stable


def test_median_calibration_removes_constant_bias() -> None:
    vel, stable = biased_velocity((3.0, -2.0))
    for name in ("vx", "v"):
        vel[name].attrs["comment"] = "user attr"
    vx_before = vel.vx.values.copy()
    out = calibrate_stable(vel)
    assert out.attrs["calibration"] == "median"
    assert out.attrs["stable_points"] == stable.sum()
    assert out.attrs["stable_median_vx_before"] == pytest.approx(3.0, abs=0.1)
    assert out.attrs["stable_median_vy_before"] == pytest.approx(-2.0, abs=0.1)
    assert abs(out.attrs["stable_median_vx_after"]) < 0.1 and abs(out.attrs["stable_median_vy_after"]) < 0.1
    assert out.attrs["stable_mad_vx_before"] == pytest.approx(0.5 * 0.6745, rel=0.15)  # unscaled MAD of N(0, 0.5)
    assert out.attrs["stable_mad_vx_after"] == pytest.approx(out.attrs["stable_mad_vx_before"], rel=1e-6)
    a, b, c = out.attrs["calibration_vx_coefficients"]
    assert a == pytest.approx(3.0, abs=0.1) and b == c == 0.0
    # Checked on the data itself, not only on the reported statistics.
    assert abs(np.median(out.vx.values[stable])) < 0.1 and abs(np.median(out.vy.values[stable])) < 0.1
    np.testing.assert_allclose(out.vx.values, vx_before - a, atol=1e-4)  # glacier shifted by the same amount
    np.testing.assert_allclose(out.v.values, np.hypot(out.vx.values, out.vy.values), rtol=1e-6)
    vx, vy, e = out.vx.values, out.vy.values, 0.1 * K
    np.testing.assert_allclose(out.v_error.values, np.hypot(vx * e, vy * e) / np.hypot(vx, vy), rtol=1e-5)
    for name in vel.data_vars:
        assert out[name].attrs == vel[name].attrs, name
        assert out[name].encoding.get("grid_mapping") == "spatial_ref", name
    assert out.attrs["dt_days"] == 12.0  # the input's attrs are kept
    assert out.rio.crs.to_epsg() == 3413


def test_flagged_points_are_not_stable() -> None:
    vel, stable = biased_velocity((3.0, -2.0))
    bad = stable & (np.random.default_rng(3).random((NY, NX)) < 0.4)
    vel["vx"] = vel.vx.where(~bad, 30.0)  # below max_speed: only the flag keeps them out
    vel["flag"] = vel.flag.where(~bad, 3)
    out = calibrate_stable(vel)
    assert out.attrs["stable_points"] == (stable & ~bad).sum()
    assert out.attrs["stable_median_vx_before"] == pytest.approx(3.0, abs=0.1)


def test_plane_calibration_recovers_plane_despite_outliers() -> None:
    rng = np.random.default_rng(4)
    xx, yy = np.meshgrid(X, Y)
    xc, yc = X.mean(), Y.mean()
    plane_x = 2.0 + 1e-3 * (xx - xc) - 5e-4 * (yy - yc)  # m/yr, up to ~3.7 m/yr across 5 km
    plane_y = -1.0 - 4e-4 * (xx - xc) + 8e-4 * (yy - yc)
    vx = plane_x + rng.normal(0, 0.3, (NY, NX))
    vy = plane_y + rng.normal(0, 0.3, (NY, NX))
    outliers = rng.random((NY, NX)) < 0.05
    vx[outliers] += 25.0  # one-sided, below max_speed: a plain least-squares fit would be biased
    vy[outliers] -= 20.0
    vel = offsets_to_velocity(make_offsets(vx / K, vy / K))
    out = calibrate_stable(vel, plane=True)
    assert out.attrs["calibration"] == "plane"
    for name, (a0, b0, c0) in (("vx", (2.0, 1e-3, -5e-4)), ("vy", (-1.0, -4e-4, 8e-4))):
        a, b, c = out.attrs[f"calibration_{name}_coefficients"]
        assert b == pytest.approx(b0, abs=3e-5) and c == pytest.approx(c0, abs=3e-5), name
        assert a + b * xc + c * yc == pytest.approx(a0, abs=0.05), name  # plane value at the centre
        assert out.attrs[f"calibration_{name}_inliers"] <= (~outliers).sum()
        assert abs(out.attrs[f"stable_median_{name}_after"]) < 0.1
    clean = ~outliers
    assert np.abs(out.vx.values[clean]).max() < 2.0  # the plane is gone everywhere, not only on average
    assert abs(np.mean(out.vx.values[clean])) < 0.05 and abs(np.mean(out.vy.values[clean])) < 0.05


def test_explicit_stable_mask_is_used() -> None:
    # A slow glacier (33 m/yr < max_speed) over most of the grid: the speed criterion would take it as stable.
    vel, bedrock = biased_velocity((3.0, -2.0), glacier=(slice(None), slice(12, None)), glacier_speed=30.0)
    mask = xr.DataArray(bedrock, dims=("y", "x"), coords={"y": Y, "x": X})
    out = calibrate_stable(vel, mask)
    assert out.attrs["stable_criterion"] == "stable_mask"
    assert out.attrs["stable_points"] == bedrock.sum() == 12 * NY
    assert out.attrs["stable_median_vx_before"] == pytest.approx(3.0, abs=0.1)
    assert abs(np.median(out.vx.values[bedrock])) < 0.1
    by_speed = calibrate_stable(vel)
    assert by_speed.attrs["stable_median_vx_before"] > 10  # the glacier dominates without the mask


def test_too_few_stable_points_raises() -> None:
    vel, _ = biased_velocity((3.0, -2.0))
    mask = xr.DataArray(np.zeros((NY, NX), bool), dims=("y", "x"), coords={"y": Y, "x": X})
    mask[:1, :5] = True
    with pytest.raises(ValueError, match=r"only 5 stable points \(stable_mask"):
        calibrate_stable(vel, mask)
    with pytest.raises(ValueError, match=r"only 0 stable points \(v < 0.1 m/yr"):
        calibrate_stable(vel, max_speed=0.1)


def test_bad_stable_mask_raises() -> None:
    vel, stable = biased_velocity((3.0, -2.0))
    shifted = xr.DataArray(stable, dims=("y", "x"), coords={"y": Y + 50.0, "x": X})
    with pytest.raises(ValueError, match="grid"):
        calibrate_stable(vel, shifted)
    with pytest.raises(TypeError, match="boolean"):
        calibrate_stable(vel, xr.DataArray(stable.astype(int), dims=("y", "x"), coords={"y": Y, "x": X}))


@pytest.mark.parametrize("plane", [False, True])
def test_calibration_of_dask_input_computes_once_and_stays_lazy(plane: bool) -> None:
    vel, _ = biased_velocity((3.0, -2.0))
    chunked = vel.chunk({"y": 13, "x": 17})
    with raise_if_dask_computes(max_computes=1):
        out = calibrate_stable(chunked, plane=plane)
    for name in ("vx", "vy", "v", "v_error"):
        assert isinstance(out[name].data, dsa.Array), name
    xr.testing.assert_allclose(out.compute(), calibrate_stable(vel, plane=plane), rtol=1e-6)
