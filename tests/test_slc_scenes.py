"""SLC pair simulator: spectrum, exact band-limited shift, coherence and geometry against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from cryocube.gps import DAYS_PER_YEAR, project_gps
from cryocube.slc_scenes import ERS, SENTINEL1_IW, OutletGlacier, SarGeometry, gps_points, look_angles, slc_pair


def test_speckle_is_band_limited_with_unit_power():
    scene = slc_pair((256, 128), uniform_velocity_m_per_yr=(0.0, 0.0), seed=1)
    s1 = scene["slc1"].values
    assert s1.dtype == np.complex64
    assert np.mean(np.abs(s1) ** 2) == pytest.approx(1.0, abs=0.03)
    spectrum = np.abs(np.fft.fft2(s1)) ** 2
    f_az = np.abs(np.fft.fftfreq(256))[:, None] * np.ones((1, 128))
    f_rg = np.ones((256, 1)) * np.abs(np.fft.fftfreq(128))[None, :]
    outside = (f_az > ERS.azimuth_bandwidth / 2 + 1e-9) | (f_rg > ERS.range_bandwidth / 2 + 1e-9)
    assert spectrum[outside].sum() / spectrum.sum() < 1e-10


def test_uniform_shift_is_the_exact_fourier_shift_with_the_los_phase():
    # gamma = 1: s2 = shift(s1) exp(-i phi) exactly; shift by an independent route (FFT ramp)
    v_az, v_gr = 150.0, 40.0
    scene = slc_pair((128, 64), uniform_velocity_m_per_yr=(v_az, v_gr), coherence_ice=1.0, dt_days=6.0, seed=2)
    years = 6.0 / DAYS_PER_YEAR
    d_az, d_gr = v_az * years / ERS.azimuth_spacing_m, v_gr * years / ERS.ground_range_spacing_m
    fy, fx = np.fft.fftfreq(128)[:, None], np.fft.fftfreq(64)[None, :]
    shifted = np.fft.ifft2(np.fft.fft2(scene["slc1"].values.astype(np.complex128))
                           * np.exp(-2j * np.pi * (fy * d_az + fx * d_gr)))
    v_los = -v_gr * math.sin(math.radians(ERS.incidence_deg))
    phase = -4 * math.pi * v_los * years / ERS.wavelength_m
    assert scene["v_los"].values[0, 0] == pytest.approx(v_los)
    np.testing.assert_allclose(scene["slc2"].values, shifted * np.exp(-1j * phase), atol=2e-5)
    assert scene["d_azimuth"].values[5, 5] == pytest.approx(d_az * ERS.azimuth_spacing_m)


@pytest.mark.parametrize("gamma", [0.3, 0.8])
def test_sample_coherence_matches_the_requested_one(gamma):
    scene = slc_pair((256, 256), uniform_velocity_m_per_yr=(0.0, 0.0), coherence_ice=gamma, seed=3)
    s1, s2 = scene["slc1"].values, scene["slc2"].values
    sample = np.abs(np.vdot(s2, s1)) / math.sqrt(np.vdot(s1, s1).real * np.vdot(s2, s2).real)
    assert sample == pytest.approx(gamma, abs=0.02)
    np.testing.assert_allclose(scene["coherence"].values, gamma)


def test_glacier_geometry_matches_project_gps_and_the_flow_model():
    glacier = OutletGlacier(max_speed_m_per_yr=500.0, flow_angle_deg=30.0)
    scene = slc_pair((128, 64), glacier=glacier, geometry=SENTINEL1_IW, seed=4)
    phi, theta = look_angles(SENTINEL1_IW)
    v_los, v_az = project_gps(scene["ve"].values, scene["vn"].values, scene["vu"].values, phi_deg=phi, theta_deg=theta)
    np.testing.assert_allclose(v_los, scene["v_los"].values, atol=1e-9)
    np.testing.assert_allclose(v_az, scene["v_azimuth"].values, atol=1e-9)
    speed = np.hypot(scene["v_azimuth"].values, scene["v_ground_range"].values)
    assert speed.max() == pytest.approx(500.0, rel=0.01)  # centreline crosses the scene centre
    assert np.all(speed[scene["stable"].values] == 0)
    assert scene["ice"].any() and scene["stable"].any()
    # topographic phase: one cycle per height of ambiguity
    g = SENTINEL1_IW
    h_a = g.wavelength_m * g.slant_range_m * math.sin(math.radians(g.incidence_deg)) / (2 * g.baseline_perp_m)
    np.testing.assert_allclose(scene["topo_phase"].values, 2 * math.pi * scene["dem"].values / h_a, rtol=1e-9)


def test_gps_points_carry_the_truth_projected():
    scene = slc_pair((128, 64), seed=5)
    points = gps_points(scene, 6, where="ice", noise_m_per_yr=0.0, seed=0)
    iy = np.searchsorted(scene["y"].values, points["y"].values)
    ix = np.searchsorted(scene["x"].values, points["x"].values)
    np.testing.assert_allclose(points["v_los"], scene["v_los"].values[iy, ix], atol=1e-9)
    np.testing.assert_allclose(points["v_azimuth"], scene["v_azimuth"].values[iy, ix], atol=1e-9)
    assert scene["ice"].values[iy, ix].all()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="coherence_ice"):
        slc_pair((64, 64), coherence_ice=0.0)
    with pytest.raises(ValueError, match="azimuth_bandwidth"):
        SarGeometry(wavelength_m=0.05, azimuth_spacing_m=4, ground_range_spacing_m=20, incidence_deg=30,
                    slant_range_m=8e5, azimuth_bandwidth=1.5, range_bandwidth=0.8, antenna_length_m=10)
    with pytest.raises(ValueError, match="where"):
        gps_points(slc_pair((64, 64)), 3, where="sea")


def test_slc_pair_round_trips_through_zarr_as_complex64(tmp_path):
    scene = slc_pair((64, 48), seed=6)
    scene[["slc1", "slc2"]].chunk({"y": 32, "x": 24}).to_zarr(tmp_path / "slc.zarr")
    back = xr.open_zarr(tmp_path / "slc.zarr")
    assert back["slc1"].dtype == np.complex64
    np.testing.assert_array_equal(back["slc2"].values, scene["slc2"].values)
    assert back["slc1"].attrs["wavelength_m"] == ERS.wavelength_m
