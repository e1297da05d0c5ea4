"""Multi-aperture interferometry against simulated azimuth displacement and the Cramer-Rao sigma."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cryocube.mai import mai, subaperture_filters
from cryocube.slc_scenes import ERS, OutletGlacier, gps_points, slc_pair
from cryocube.testing import raise_if_dask_computes

HALO_ROWS = 2  # multilooked rows (20 px each) touched by the 65-tap filter's zero padding at the scene edges


@pytest.mark.parametrize("split", [0.4, 0.5])
def test_subaperture_separation_and_width(split):
    b = ERS.azimuth_bandwidth
    h_fwd, h_bwd, df, b_eq = subaperture_filters(b, split, taps=129)
    assert df == pytest.approx(split * b, rel=0.02)  # ideal filters: centres at +-n b / 2
    assert b_eq == pytest.approx((1 - split) * b, rel=0.08)
    np.testing.assert_allclose(h_bwd, np.conj(h_fwd))
    response = np.abs(np.fft.fft(h_fwd, 1024)) ** 2
    f = np.fft.fftfreq(1024)
    low_edge = split * b / 2 - (1 - split) * b / 2  # forward band [n b / 2 -+ (1 - n) b / 2]
    assert response[f < low_edge - 0.05].max() < 1e-3 * response.max()  # rejects the backward-looking Doppler


@pytest.mark.parametrize("v_az", [120.0, -250.0])
def test_uniform_azimuth_motion_is_recovered_with_its_sign(v_az):
    scene = slc_pair((600, 160), uniform_velocity_m_per_yr=(v_az, 30.0), coherence_ice=0.9, seed=21)
    out = mai(scene["slc1"], scene["slc2"], looks=(20, 4), dt_days=1.0, filter=None)
    d = out["azimuth_displacement"].values[HALO_ROWS:-HALO_ROWS]
    truth = scene["d_azimuth"].values[0, 0]
    sigma = out["azimuth_displacement_error"].values[HALO_ROWS:-HALO_ROWS]
    assert np.mean(d) == pytest.approx(truth, abs=4 * float(np.median(sigma)) / math.sqrt(d.size))
    assert np.std(d) == pytest.approx(np.median(sigma), rel=0.2)  # Cramer-Rao sigma is the real scatter
    np.testing.assert_allclose(out["v_azimuth"].values, out["azimuth_displacement"].values * 365.25, rtol=1e-5)


def test_mai_on_the_glacier_ignores_los_and_topographic_phase():
    scene = slc_pair((800, 160), coherence_ice=0.95, coherence_rock=0.95, seed=22)
    out = mai(scene["slc1"], scene["slc2"], looks=(20, 4), dt_days=1.0, filter="mean", filter_px=3)
    truth = scene["v_azimuth"].coarsen(y=20, x=4).mean().values
    inner = slice(HALO_ROWS + 1, -HALO_ROWS - 1)
    error = (out["v_azimuth"].values - truth)[inner]
    sigma = out["v_azimuth_error"].values[inner]
    assert scene["topo_phase"].max() > 2 * math.pi and abs(scene["v_los"]).max() > 20
    assert np.median(np.abs(error) / sigma) < 1.0
    assert abs(np.median(error)) < 0.2 * np.median(sigma)


def test_removing_the_interferometric_phase_saves_steep_fringes():
    # 1-day LoS fringes of ~4 cycles across a narrow glacier decorrelate the 20 x 4 windows unless removed first
    scene = slc_pair((400, 160), glacier=OutletGlacier(max_speed_m_per_yr=600.0, flow_angle_deg=40.0, relief_m=0.0),
                     coherence_ice=0.9, coherence_rock=0.9, seed=25)
    truth = scene["v_azimuth"].coarsen(y=20, x=4).mean().values[HALO_ROWS:-HALO_ROWS]
    raw = mai(scene["slc1"], scene["slc2"], looks=(20, 4), dt_days=1.0, filter=None)
    fixed = mai(scene["slc1"], scene["slc2"], looks=(20, 4), dt_days=1.0, filter=None, phase=scene["phase"])
    coh_raw = raw["coherence_forward"].values[HALO_ROWS:-HALO_ROWS]
    coh_fixed = fixed["coherence_forward"].values[HALO_ROWS:-HALO_ROWS]
    assert np.percentile(coh_raw, 5) < 0.5 < np.percentile(coh_fixed, 5)
    z = np.abs(fixed["v_azimuth"].values[HALO_ROWS:-HALO_ROWS] - truth) / fixed["v_azimuth_error"].values[HALO_ROWS:-HALO_ROWS]
    assert np.mean(z < 2) > 0.9


def test_gcp_calibration_removes_an_offset():
    scene = slc_pair((400, 96), uniform_velocity_m_per_yr=(0.0, 0.0), coherence_ice=0.95, seed=23)
    grid = mai(scene["slc1"], scene["slc2"], looks=(20, 4), dt_days=1.0)
    points = gps_points(scene, 10, where="ice", noise_m_per_yr=0.0, grid=grid)
    points["v_azimuth"] = -40.0  # pretend the points move: the calibration adds 40 m/yr
    out = mai(scene["slc1"], scene["slc2"], looks=(20, 4), dt_days=1.0, gcps=points)
    assert float(out["calibration_offset"]) == pytest.approx(40.0, abs=3 * float(grid["v_azimuth_error"].median()))
    np.testing.assert_allclose(out["v_azimuth"].values, grid["v_azimuth"].values - float(out["calibration_offset"]),
                               atol=1e-3)


@pytest.mark.parametrize("filter", [None, "mean"])
def test_lazy_and_chunk_independent(filter):
    scene = slc_pair((400, 120), uniform_velocity_m_per_yr=(200.0, 0.0), coherence_ice=0.7, seed=24)
    whole = mai(scene["slc1"], scene["slc2"], looks=(20, 4), dt_days=1.0, filter=filter)
    with raise_if_dask_computes():
        lazy = mai(scene["slc1"].chunk({"y": 47, "x": 31}), scene["slc2"].chunk({"y": 47, "x": 31}), looks=(20, 4),
                   dt_days=1.0, filter=filter)
    for name in ("azimuth_displacement", "azimuth_displacement_error", "coherence_forward"):
        np.testing.assert_allclose(lazy[name].values, whole[name].values, rtol=1e-4, atol=1e-5)
    assert lazy["azimuth_displacement"].attrs["units"] == "m"
    assert lazy.attrs["separation_cycles_per_px"] > 0


def test_bad_input_is_named():
    scene = slc_pair((64, 32), uniform_velocity_m_per_yr=(0.0, 0.0))
    s1, s2 = scene["slc1"], scene["slc2"]
    with pytest.raises(ValueError, match="split"):
        mai(s1, s2, split=1.2, looks=(4, 4))
    with pytest.raises(ValueError, match="filter"):
        mai(s1, s2, filter="median", looks=(4, 4))
    with pytest.raises(ValueError, match="dt_days"):
        mai(s1, s2, looks=(4, 4), gcps=pd.DataFrame({"x": [0.0], "y": [0.0], "v_azimuth": [0.0]}))
    with pytest.raises(ValueError, match="azimuth_spacing_m"):
        mai(s1.drop_attrs(), s2.drop_attrs(), looks=(4, 4), azimuth_bandwidth=0.8)
    with pytest.raises(ValueError, match="taps"):
        mai(s1, s2, looks=(4, 4), taps=64)
    with pytest.raises(TypeError, match="complex"):
        mai(xr.DataArray(np.zeros((64, 32)), dims=("y", "x")), s2, looks=(4, 4))


def test_goldstein_filter_and_zarr_round_trip(tmp_path):
    scene = slc_pair((1400, 136), uniform_velocity_m_per_yr=(150.0, 0.0), coherence_ice=0.8, seed=26)  # >= 32 px looked
    out = mai(scene["slc1"], scene["slc2"], looks=(20, 4), dt_days=1.0, filter="goldstein", alpha=0.8)
    error = out["azimuth_displacement"].values[HALO_ROWS:-HALO_ROWS] - scene["d_azimuth"].values[0, 0]
    sigma = out["azimuth_displacement_error"].values[HALO_ROWS:-HALO_ROWS]
    assert abs(np.mean(error)) < 0.1 * np.median(sigma)
    assert np.std(error) < np.median(sigma)  # the filter lowers the scatter below the unfiltered bound
    out.to_zarr(tmp_path / "mai.zarr")
    back = xr.open_zarr(tmp_path / "mai.zarr")
    np.testing.assert_allclose(back["v_azimuth"].values, out["v_azimuth"].values)
    assert back["v_azimuth"].attrs["units"] == "m/yr"
