"""The synthetic glacier's truth behaves as cryocube.synthetic documents it."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryocube import synthetic as syn

X, Y = syn.grid_xy(syn.S1_GRID)
LEFT, BOTTOM, RIGHT, TOP = syn.BOUNDS
SEASON_START = syn.days_since_epoch("2019-04-01T00:00:00")
SEASON_END = syn.days_since_epoch("2019-10-15T00:00:00")

xs = st.floats(LEFT, RIGHT, allow_nan=False)
ys = st.floats(BOTTOM, TOP, allow_nan=False)
days = st.floats(SEASON_START, SEASON_END, allow_nan=False)
fast = settings(max_examples=60, deadline=None)


def _tau(t: float) -> float:
    return t / syn.DAYS_PER_YEAR


# --------------------------------------------------------------------------- flow
def test_velocity_zero_on_stable_ground_and_positive_on_glacier() -> None:
    vx, vy = syn.velocity(X, Y)
    stable = syn.stable_mask(X, Y)
    glacier = syn.glacier_mask(X, Y)
    assert stable.sum() > 1000 and glacier.sum() > 1000
    assert not (stable & glacier).any()
    assert np.all(vx[stable] == 0) and np.all(vy[stable] == 0)
    assert np.all(vx[~glacier] == 0) and np.all(vy[~glacier] == 0)
    assert np.all(syn.speed(X, Y)[glacier] > 0)
    # flow towards -x and -y (200 degrees), parallel to the documented direction
    a = math.radians(syn.FLOW_DIRECTION_DEG)
    np.testing.assert_allclose(vx * math.sin(a) - vy * math.cos(a), 0, atol=1e-9)
    assert np.all(vx[glacier] < 0) and np.all(vy[glacier] < 0)


def test_peak_speed_is_a_few_km_per_year_and_under_two_pixels_per_six_days() -> None:
    v = syn.speed(X, Y)
    assert 4000 < v.max() < 4700
    px_per_6_days = v.max() * 6 / syn.DAYS_PER_YEAR / syn.S1_GRID.resolution
    assert 1.5 < px_per_6_days < 2.0


def test_velocity_is_continuous_across_the_shear_margin() -> None:
    # walk across the channel in 1 m steps: no jumps larger than the maximal gradient allows
    a = math.radians(syn.FLOW_DIRECTION_DEG)
    n = np.arange(-2000.0, 2000.0, 1.0)
    x = syn.CENTER_X - n * math.sin(a)
    y = syn.CENTER_Y + n * math.cos(a)
    v = syn.speed(x, y)
    assert np.max(np.abs(np.diff(v))) < 6.0  # m/yr per m; |dv/dn| <= 1.54 * 2 * 4500 / 2400 ~ 5.8


@fast
@given(x=xs, y=ys, t1=days, t2=days)
def test_displacement_solves_the_fixed_point_equation(x: float, y: float, t1: float, t2: float) -> None:
    dx, dy = syn.displacement(x, y, t1, t2)
    vx1, vy1 = syn.velocity(x, y)
    vx2, vy2 = syn.velocity(x + dx, y + dy)
    # q - v(q) tau2 = p - v(p) tau1  <=>  D = v(p + D) tau2 - v(p) tau1
    assert abs(dx - (vx2 * _tau(t2) - vx1 * _tau(t1))) < 1e-9
    assert abs(dy - (vy2 * _tau(t2) - vy1 * _tau(t1))) < 1e-9
    # and the Lagrangian labels agree
    rx1, ry1 = syn.reference_position(x, y, t1)
    rx2, ry2 = syn.reference_position(x + dx, y + dy, t2)
    assert abs(rx2 - rx1) < 2e-9 and abs(ry2 - ry1) < 2e-9


@fast
@given(x=xs, y=ys, t1=days, t2=days)
def test_warped_texture_matches_at_the_displaced_position(x: float, y: float, t1: float, t2: float) -> None:
    dx, dy = syn.displacement(x, y, t1, t2)
    assert abs(syn.texture(x + dx, y + dy, t2) - syn.texture(x, y, t1)) < 1e-8
    f1 = syn.frozen_speckle(x, y, t1, 90, "hh")
    f2 = syn.frozen_speckle(x + dx, y + dy, t2, 90, "hh")
    assert abs(f2 - f1) < 1e-7 * max(1.0, abs(f1))


@fast
@given(x=xs, y=ys, t1=days, t2=days, t3=days)
def test_displacements_compose_and_invert(x: float, y: float, t1: float, t2: float, t3: float) -> None:
    d12 = np.array(syn.displacement(x, y, t1, t2))
    d23 = np.array(syn.displacement(x + d12[0], y + d12[1], t2, t3))
    d13 = np.array(syn.displacement(x, y, t1, t3))
    np.testing.assert_allclose(d12 + d23, d13, atol=1e-8)
    d21 = np.array(syn.displacement(x + d12[0], y + d12[1], t2, t1))
    np.testing.assert_allclose(d21, -d12, atol=1e-8)


def test_displacement_on_a_grid_is_zero_on_stable_ground_and_close_to_v_dt() -> None:
    t1, t2 = dt.datetime(2019, 6, 1, 10, 5, 12), dt.datetime(2019, 6, 7, 10, 5, 12)
    dx, dy = syn.displacement(X, Y, t1, t2)
    assert dx.shape == X.shape
    stable = syn.stable_mask(X, Y)
    assert np.all(dx[stable] == 0) and np.all(dy[stable] == 0)
    vx, vy = syn.velocity(X, Y)
    dtyr = 6 / syn.DAYS_PER_YEAR
    # over 6 days the exact displacement differs from v*dt by far less than a pixel
    assert np.max(np.abs(dx - vx * dtyr)) < 2.0 and np.max(np.abs(dy - vy * dtyr)) < 2.0
    assert np.max(np.hypot(dx, dy)) > 60.0  # ~1.8 px of 40 m
    # zero interval, zero displacement
    zx, zy = syn.displacement(X, Y, t1, t1)
    assert np.all(zx == 0) and np.all(zy == 0)


def test_time_inputs_are_equivalent() -> None:
    ref = syn.days_since_epoch(np.datetime64("2019-06-01T12:00:00"))
    assert ref == -29.5
    assert syn.days_since_epoch("2019-06-01T12:00:00Z") == ref
    assert syn.days_since_epoch(dt.datetime(2019, 6, 1, 12)) == ref
    tz = dt.timezone(dt.timedelta(hours=-2))
    assert syn.days_since_epoch(dt.datetime(2019, 6, 1, 10, tzinfo=tz)) == ref
    assert syn.days_since_epoch(ref) == ref
    assert syn.day_of_year("2019-01-01T00:00:00") == 1.0
    assert syn.day_of_year("2019-02-01T12:00:00") == 32.5


# --------------------------------------------------------------------------- melt, DEM
def test_melt_onset_before_end_and_lower_melts_earlier() -> None:
    z = syn.elevation(X, Y)
    onset, end = syn.melt_onset_doy(X, Y), syn.melt_end_doy(X, Y)
    assert np.all(onset < end)
    np.testing.assert_allclose(onset, 125 + z / 25)
    np.testing.assert_allclose(end, 285 - z / 25)
    low, high = np.unravel_index(np.argmin(z), z.shape), np.unravel_index(np.argmax(z), z.shape)
    assert onset[low] < onset[high] and end[low] > end[high]
    # inside the acquisition season, with spread across the scene
    assert 91 < onset.min() and onset.max() - onset.min() > 15 and end.max() < 288
    # elevation rises inland (upstream = east, since the ice flows towards -x)
    assert z[:, -1].mean() > z[:, 0].mean() + 200


def test_is_wet_follows_onset_and_end() -> None:
    onset = syn.melt_onset_doy(X, Y)
    t = dt.datetime(2019, 6, 1, tzinfo=dt.timezone.utc)  # doy 152
    wet = syn.is_wet(X, Y, t)
    np.testing.assert_array_equal(wet, onset <= 152.0)
    assert 0.1 < wet.mean() < 0.9
    assert not syn.is_wet(X, Y, "2019-04-10").any()
    assert syn.is_wet(X, Y, "2019-07-15").all()
    assert not syn.is_wet(X, Y, "2019-10-10").any()


# --------------------------------------------------------------------------- S1 model
def test_slope_maps_within_documented_ranges() -> None:
    hh, hv = syn.backscatter_slope(X, Y, "hh"), syn.backscatter_slope(X, Y, "hv")
    assert hh.min() >= -0.18 and hh.max() <= -0.10
    assert hv.min() >= -0.19 and hv.max() <= -0.14
    assert np.ptp(hh) > 0.04 and np.ptp(hv) > 0.02  # varies across the scene
    assert not np.allclose(hh, hv)


def test_incidence_angles_vary_across_track_in_opposite_directions() -> None:
    asc, desc = syn.incidence_angle(X, Y, "ascending"), syn.incidence_angle(X, Y, "descending")
    assert asc.shape == desc.shape == X.shape
    assert np.all(np.diff(asc, axis=1) > 0) and np.all(np.diff(desc, axis=1) < 0)
    assert np.all(np.diff(asc, axis=0) == 0)  # independent of y
    assert 33 <= asc.min() and asc.max() <= 38 and 36 <= desc.min() and desc.max() <= 41
    assert float(syn.incidence_angle(syn.CENTER_X, syn.CENTER_Y, "ascending")) == 35.5
    assert float(syn.incidence_angle(syn.CENTER_X, syn.CENTER_Y, "descending")) == 38.5
    with pytest.raises(ValueError):
        syn.incidence_angle(X, Y, "sideways")


def test_speckle_statistics_match_the_documented_looks() -> None:
    assert 1 / syn.ENL == pytest.approx(1 / syn.ENL_FROZEN + 1 / syn.ENL_INDEPENDENT + 1 / (syn.ENL_FROZEN * syn.ENL_INDEPENDENT))
    g = syn.frozen_speckle(*syn.grid_xy(syn.S2_GRID), 0.0, 25, "hv")
    assert g.min() > 0
    assert g.mean() == pytest.approx(1.0, abs=0.03)
    assert g.var() == pytest.approx(1 / syn.ENL_FROZEN, rel=0.15)
    assert syn.speckle_db_bias() == pytest.approx(-0.488, abs=0.005)


def test_s1_scene_is_model_plus_speckle() -> None:
    acq = syn.s1_acquisitions()[30]
    for pol in ("hh", "hv"):
        img = syn.s1_sigma0_db(syn.S1_GRID, acq, pol)
        assert img.dtype == np.float32 and img.shape == syn.S1_GRID.shape
        np.testing.assert_array_equal(img, syn.s1_sigma0_db(syn.S1_GRID, acq, pol))  # deterministic
        np.testing.assert_array_equal(np.round(img.astype(np.float64) / syn.DB_QUANTUM) * syn.DB_QUANTUM, img)
        residual = img - syn.s1_sigma0_model_db(X, Y, acq.datetime, acq.track, pol)
        assert residual.mean() == pytest.approx(syn.speckle_db_bias(), abs=0.15)
        assert 1.0 < residual.std() < 3.0


def test_melt_drop_and_incidence_slope_visible_in_scenes() -> None:
    acqs = [a for a in syn.s1_acquisitions() if a.track.orbit_state == "descending"]
    dry = next(a for a in acqs if a.datetime.month == 4)
    wet = next(a for a in acqs if a.datetime.month == 7)
    stable = syn.stable_mask(X, Y)  # texture and frozen speckle identical on stable ground
    for pol, drop in syn.MELT_DROP_DB.items():
        diff = syn.s1_sigma0_db(syn.S1_GRID, wet, pol) - syn.s1_sigma0_db(syn.S1_GRID, dry, pol)
        assert diff[stable].mean() == pytest.approx(drop, abs=0.1)
    # ascending vs descending on the same day, dry, stable ground: difference = slope * (theta_a - theta_d)
    a = next(a for a in syn.s1_acquisitions() if a.track.orbit_state == "ascending" and a.index == dry.index)
    model_a = syn.s1_sigma0_model_db(X, Y, a.datetime, a.track, "hh")
    model_d = syn.s1_sigma0_model_db(X, Y, dry.datetime, dry.track, "hh")
    expect = syn.backscatter_slope(X, Y, "hh") * (syn.incidence_angle(X, Y, "ascending") - syn.incidence_angle(X, Y, "descending"))
    np.testing.assert_allclose((model_a - model_d)[stable], expect[stable], atol=1e-9)


def test_s1_acquisition_schedule() -> None:
    acqs = syn.s1_acquisitions()
    assert len(acqs) == 66
    for track in syn.TRACKS:
        times = [a.datetime for a in acqs if a.track == track]
        assert all(b - a == dt.timedelta(days=6) for a, b in zip(times, times[1:]))
        assert times[0] <= dt.datetime(2019, 4, 5, tzinfo=dt.timezone.utc) and times[-1] >= dt.datetime(2019, 10, 5, tzinfo=dt.timezone.utc)
    desc = [a for a in acqs if a.track.orbit_state == "descending"]
    asc = [a for a in acqs if a.track.orbit_state == "ascending"]
    for d, a in zip(desc, asc):
        assert dt.timedelta(0) < a.datetime - d.datetime < dt.timedelta(hours=24)
        assert d.datetime.hour < 12 < a.datetime.hour  # descending morning, ascending evening
    assert {a.platform for a in acqs} == {"sentinel-1a", "sentinel-1b"}
    assert len({a.item_id for a in acqs}) == 66


# --------------------------------------------------------------------------- S2
def test_s2_scenes_clouds_and_nodata() -> None:
    scenes = syn.s2_scenes()
    assert 10 <= len(scenes) <= 20
    gaps = np.diff([s.datetime.timestamp() for s in scenes]) / 86400
    assert gaps.min() >= 5 and gaps.mean() <= 12
    cloudy = [s for s in scenes if s.cloud is not None]
    assert len(cloudy) >= 2
    x2, y2 = syn.grid_xy(syn.S2_GRID)
    for s in scenes:
        cc = syn.s2_cloud_cover(syn.S2_GRID, s)
        assert (cc > 0) == (s.cloud is not None) and 0 <= cc < 50
    edge = [s for s in scenes if s.nodata_edge_x is not None]
    assert len(edge) == 1
    dn = syn.s2_digital_numbers(syn.S2_GRID, edge[0], "B04")
    nodata = syn.s2_nodata_mask(x2, y2, edge[0])
    assert 0.05 < nodata.mean() < 0.5
    np.testing.assert_array_equal(dn == 0, nodata)
    s = cloudy[0]
    for band in syn.S2_BANDS:
        dn = syn.s2_digital_numbers(syn.S2_GRID, s, band)
        assert dn.dtype == np.uint16
        cloud = syn.s2_cloud_mask(x2, y2, s)
        assert np.all(dn[cloud] == round(syn.S2_CLOUD[band] / syn.S2_SCALE))
        exact = syn.s2_reflectance(x2, y2, s, band)
        assert 0.05 < exact.min() and exact.max() < 1.0  # physical, never clipped
        rho = dn[~cloud] * syn.S2_SCALE
        np.testing.assert_allclose(rho, exact[~cloud], atol=0.5e-4 + 1e-12)


def test_s2_texture_is_advected() -> None:
    """Exactly, through each scene's detector geolocation errors."""
    scenes = syn.s2_scenes()
    a, b = scenes[0], scenes[1]
    x = np.array([syn.CENTER_X, syn.CENTER_X + 300.0])
    y = np.array([syn.CENTER_Y, syn.CENTER_Y - 200.0])
    # image position x in scene a shows the ground at x - error_a; that ground moves by d and is imaged with error_b
    error_a = syn.s2_detector_errors(a)[syn.s2_detector(x, y)]
    gx, gy = x - error_a[:, 0], y - error_a[:, 1]
    dx, dy = syn.displacement(gx, gy, a.datetime, b.datetime)
    assert np.all(np.hypot(dx, dy) > 50)
    error_b = syn.s2_detector_errors(b)[syn.s2_detector(gx + dx, gy + dy)]
    bx, by = gx + dx + error_b[:, 0], gy + dy + error_b[:, 1]
    assert np.all(syn.s2_detector(bx, by) == syn.s2_detector(gx + dx, gy + dy))  # not at a footprint edge
    np.testing.assert_allclose(syn.s2_reflectance(bx, by, b, "B08"), syn.s2_reflectance(x, y, a, "B08"), atol=1e-9)


# --------------------------------------------------------------------------- truth dataset
def test_truth_dataset() -> None:
    ds = syn.truth_dataset(syn.S1_GRID)
    assert ds.sizes == {"y": 128, "x": 128}
    assert ds.rio.crs.to_epsg() == 3413
    np.testing.assert_array_equal(ds.x.values, syn.S1_GRID.x_coords())
    np.testing.assert_array_equal(ds.vx.values, syn.velocity(X, Y)[0])
    assert ds.vx.attrs["units"] == "m/yr" and ds.elevation.attrs["units"] == "m"
    for name in ("glacier_mask", "stable_mask", "melt_onset_doy", "melt_end_doy", "slope_hh", "slope_hv", "incidence_angle_ascending", "incidence_angle_descending"):
        assert name in ds
    assert syn.truth_dataset(syn.S2_GRID).sizes == {"y": 256, "x": 256}


def test_s2_detector_footprints_and_jumps() -> None:
    x, y = syn.grid_xy(syn.S2_GRID)
    detector = syn.s2_detector(x, y)
    assert set(np.unique(detector)) == set(range(1, syn.S2_N_DETECTORS + 1))
    # slanted stripes: the detector number grows with x and with y (slant > 0)
    assert np.all(np.diff(detector.astype(int), axis=1) >= 0) and np.all(np.diff(detector.astype(int), axis=0) <= 0)  # rows go south
    scenes = syn.s2_scenes()
    errors = syn.s2_detector_errors(scenes[3])
    assert errors.shape == (syn.S2_N_DETECTORS + 1, 2) and np.all(errors[0] == 0)
    assert 0.5 < np.abs(errors[1:]).max() <= syn.S2_DETECTOR_ERROR_M
    np.testing.assert_array_equal(syn.s2_detector_jump(scenes[3], scenes[5]), syn.s2_detector_errors(scenes[5]) - errors)
