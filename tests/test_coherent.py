"""Interferogram, DEM phase, DInSAR LoS velocity and GCP calibration against exact truth."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import xarray as xr

from cryocube import conventions as cv
from cryocube.coherent import (dinsar_chain, dinsar_velocity, interferogram, phase_sigma, topographic_phase)
from cryocube.gps import DAYS_PER_YEAR
from cryocube.slc_scenes import ERS, gps_points, slc_pair
from cryocube.testing import raise_if_dask_computes


@pytest.fixture(scope="module")
def glacier_scene() -> xr.Dataset:
    return slc_pair((400, 160), coherence_ice=0.8, coherence_rock=0.95, seed=11)


def test_topographic_phase_closed_form():
    h_a = 0.0566 * 850e3 * math.sin(math.radians(23)) / (2 * 100.0)  # height of ambiguity
    phase = topographic_phase(np.array([0.0, h_a, -2 * h_a]), baseline_perp_m=100.0, wavelength_m=0.0566,
                              slant_range_m=850e3, incidence_deg=23.0)
    np.testing.assert_allclose(phase, [0.0, 2 * math.pi, -4 * math.pi])
    with pytest.raises(ValueError, match="incidence_deg"):
        topographic_phase(1.0, baseline_perp_m=1, wavelength_m=0.05, slant_range_m=1e5, incidence_deg=95)


def test_noise_free_interferogram_is_the_deformation_phase(glacier_scene):
    scene = slc_pair((200, 80), coherence_ice=1.0, coherence_rock=1.0, seed=12)
    ifg = interferogram(scene["slc1"], scene["slc2"], looks=(10, 2), dem_phase=scene["topo_phase"])
    phase = scene["phase"] - scene["topo_phase"]
    windows = phase.coarsen(y=10, x=2)
    flat = (windows.max() - windows.min()).values < 0.1  # windows without a steep phase gradient (shear margins)
    residual = np.angle(ifg["interferogram"].values * np.exp(-1j * windows.mean().values))
    assert flat.mean() > 0.5
    assert np.abs(residual[flat]).max() < 0.01
    assert float(ifg["coherence"].values[flat].min()) > 0.97
    np.testing.assert_allclose(ifg[cv.Y].values, scene[cv.Y].values.reshape(-1, 10).mean(axis=1))
    assert ifg["coherence"].attrs["nlooks"] == pytest.approx(20 * ERS.azimuth_bandwidth * ERS.range_bandwidth)


def test_coherence_and_phase_noise_follow_theory(glacier_scene):
    ifg = interferogram(glacier_scene["slc1"], glacier_scene["slc2"], looks=(10, 4),
                        dem_phase=glacier_scene["topo_phase"])
    truth = glacier_scene["coherence"].coarsen(y=10, x=4).mean().values
    rock = glacier_scene["stable"].coarsen(y=10, x=4).min().values
    assert np.median(ifg["coherence"].values[rock]) == pytest.approx(0.95, abs=0.02)
    deformation = (glacier_scene["phase"] - glacier_scene["topo_phase"]).coarsen(y=10, x=4).mean().values
    residual = np.angle(ifg["interferogram"].values * np.exp(-1j * deformation))[rock]
    expected = float(phase_sigma(np.median(truth[rock]), ifg["coherence"].attrs["nlooks"]))
    assert np.std(residual) == pytest.approx(expected, rel=0.25)


def test_interferogram_is_lazy_and_chunk_independent(glacier_scene):
    whole = interferogram(glacier_scene["slc1"], glacier_scene["slc2"], looks=(10, 3))
    with raise_if_dask_computes():
        lazy = interferogram(glacier_scene["slc1"].chunk({"y": 37, "x": 29}),
                             glacier_scene["slc2"].chunk({"y": 53, "x": 41}), looks=(10, 3),
                             dem_phase=xr.zeros_like(glacier_scene["topo_phase"]).chunk({"y": 71}))
    np.testing.assert_allclose(lazy["interferogram"].values, whole["interferogram"].values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lazy["coherence"].values, whole["coherence"].values, atol=1e-6)
    assert lazy["interferogram"].shape == (40, 53)
    assert json.loads(lazy.attrs[cv.ATTR_PARAMS])["looks"] == [10, 3]


def _phase_of(v_los: np.ndarray, dt_days: float, wavelength_m: float) -> np.ndarray:
    return -4 * math.pi / wavelength_m * v_los * dt_days / DAYS_PER_YEAR


def test_dinsar_velocity_calibrates_each_component_on_its_gcps():
    y, x = np.arange(20.0), np.arange(30.0)
    v_true = np.add.outer(np.linspace(0, 50, 20), np.linspace(-20, 20, 30))
    labels = np.ones((20, 30), np.uint32)
    labels[:, 15:] = 2
    labels[:, 25:] = 3  # no GCP there
    labels[0, 0] = 0  # not unwrapped
    phase = _phase_of(v_true, 2.0, 0.05) + 0.7 + 2 * math.pi * (labels == 2)
    coords = {cv.Y: y, cv.X: x}
    unw = xr.Dataset({"unwrapped_phase": ((cv.Y, cv.X), phase), "connected_component": ((cv.Y, cv.X), labels)},
                     coords=coords)
    coherence = xr.DataArray(np.full((20, 30), 0.5), dims=(cv.Y, cv.X), coords=coords)
    gcps = pd.DataFrame({"x": [3.0, 10.0, 18.0], "y": [5.0, 12.0, 7.0]})
    gcps["v_los"] = v_true[gcps["y"].astype(int), gcps["x"].astype(int)]
    out = dinsar_velocity(unw.chunk({"y": 7, "x": 11}), dt_days=2.0, wavelength_m=0.05, coherence=coherence,
                          nlooks=4.0, gcps=gcps)
    v = out["v_los"].values
    good = labels[:, :] > 0
    good &= labels < 3
    np.testing.assert_allclose(v[good], v_true[good], atol=1e-3)
    assert np.isnan(v[labels == 3]).all() and np.isnan(v[0, 0])
    sigma = 0.05 / (4 * math.pi) / 2.0 * DAYS_PER_YEAR * math.sqrt(0.75 / (2 * 4 * 0.25))
    np.testing.assert_allclose(out["v_los_error"].values, sigma, rtol=1e-5)
    assert out["v_los"].attrs["units"] == "m/yr"
    assert out["gcp_offset"].sizes["gcp"] == 3


def test_dinsar_velocity_sign_is_towards_the_radar():
    coords = {cv.Y: [0.0, 1.0], cv.X: [0.0, 1.0]}
    towards = _phase_of(np.full((2, 2), 100.0), 1.0, 0.0566)  # R decreases: phase of s1 conj(s2) negative
    assert (towards < 0).all()
    out = dinsar_velocity(xr.DataArray(towards, dims=(cv.Y, cv.X), coords=coords), dt_days=1.0, wavelength_m=0.0566,
                          coherence=xr.DataArray(np.ones((2, 2)), dims=(cv.Y, cv.X), coords=coords), nlooks=1)
    np.testing.assert_allclose(out["v_los"].values, 100.0, rtol=1e-5)


def test_full_chain_is_within_its_sigma_on_coherent_ice(glacier_scene):
    grid = interferogram(glacier_scene["slc1"], glacier_scene["slc2"], looks=(10, 2))
    gcps = gps_points(glacier_scene, 8, where="stable", noise_m_per_yr=0.0, grid=grid).assign(v_los=0.0)
    with raise_if_dask_computes():
        out = dinsar_chain(glacier_scene["slc1"].chunk({"y": 100}), glacier_scene["slc2"].chunk({"y": 100}),
                           dt_days=1.0, wavelength_m=ERS.wavelength_m, looks=(10, 2),
                           dem_phase=glacier_scene["topo_phase"], gcps=gcps)
    out = out.compute()
    truth = glacier_scene["v_los"].coarsen(y=10, x=2).mean().values
    ice = glacier_scene["ice"].coarsen(y=10, x=2).min().values
    z = np.abs(out["v_los"].values - truth) / out["v_los_error"].values
    assert np.isfinite(z[ice]).mean() > 0.99
    assert np.mean(z[ice] < 2) > 0.95


def test_bad_input_is_named(glacier_scene):
    s1, s2 = glacier_scene["slc1"], glacier_scene["slc2"]
    with pytest.raises(TypeError, match="complex"):
        interferogram(abs(s1), s2)
    with pytest.raises(ValueError, match="looks"):
        interferogram(s1, s2, looks=(0, 2))
    with pytest.raises(ValueError, match="same shape"):
        interferogram(s1, s2.isel(y=slice(0, 100)))
    with pytest.raises(ValueError, match="dem_phase"):
        interferogram(s1, s2, dem_phase=glacier_scene["topo_phase"].isel(x=slice(0, 10)))
    phase = xr.zeros_like(glacier_scene["dem"])
    with pytest.raises(ValueError, match="dt_days"):
        dinsar_velocity(phase, dt_days=0, wavelength_m=0.05, coherence=phase, nlooks=1)
    with pytest.raises(ValueError, match="nlooks"):
        dinsar_velocity(phase, dt_days=1, wavelength_m=0.05, coherence=phase)
    with pytest.raises(ValueError, match="gcps lacks"):
        dinsar_velocity(phase, dt_days=1, wavelength_m=0.05, coherence=phase, nlooks=1,
                        gcps=pd.DataFrame({"x": [0.0], "y": [0.0]}))
    with pytest.raises(ValueError, match="outside the product grid"):
        dinsar_velocity(phase, dt_days=1, wavelength_m=0.05, coherence=phase, nlooks=1,
                        gcps=pd.DataFrame({"x": [-1e6], "y": [0.0], "v_los": [0.0]}))


def test_plots_write_pngs(tmp_path, glacier_scene):
    from cryocube.plot.coherent import mai_error_plot, velocity_maps

    grid = np.linspace(0.3, 0.9, 5)
    png = mai_error_plot([0.5, 0.8], [0.5, 0.2], grid, 0.1 / grid, tmp_path / "mai.png", predicted_m=[0.5, 0.2])
    assert png.stat().st_size > 1000
    truth = glacier_scene["v_los"].rename("v_los")
    png = velocity_maps([truth], tmp_path / "maps.png", truths=[truth])
    assert png.stat().st_size > 1000


@settings(max_examples=12, deadline=None)
@given(ny=st.integers(6, 24), nx=st.integers(4, 16), la=st.integers(1, 5), lr=st.integers(1, 4),
       cy=st.integers(2, 11), cx=st.integers(2, 7), seed=st.integers(0, 1000))
def test_interferogram_matches_a_window_loop_for_any_chunks(ny, nx, la, lr, cy, cx, seed):
    rng = np.random.default_rng(seed)
    s1, s2 = (rng.standard_normal((ny, nx)) + 1j * rng.standard_normal((ny, nx)) for _ in range(2))
    phase = rng.uniform(-np.pi, np.pi, (ny, nx))
    coords = {cv.Y: np.arange(ny, dtype=float), cv.X: np.arange(nx, dtype=float)}
    da1, da2, dph = (xr.DataArray(a, dims=(cv.Y, cv.X), coords=coords).chunk({"y": cy, "x": cx})
                     for a in (s1.astype(np.complex64), s2.astype(np.complex64), phase))
    out = interferogram(da1, da2, looks=(la, lr), dem_phase=dph).compute()
    expected_ifg = np.empty((ny // la, nx // lr), complex)
    expected_coh = np.empty((ny // la, nx // lr))
    for i in range(ny // la):
        for j in range(nx // lr):
            w = (slice(i * la, (i + 1) * la), slice(j * lr, (j + 1) * lr))
            a, b = s1[w].astype(np.complex64).astype(complex), s2[w].astype(np.complex64).astype(complex)
            num = np.sum(a * np.conj(b) * np.exp(-1j * phase[w]))
            expected_ifg[i, j] = num / (la * lr)
            expected_coh[i, j] = abs(num) / np.sqrt(np.sum(abs(a) ** 2) * np.sum(abs(b) ** 2))
    np.testing.assert_allclose(out["interferogram"].values, expected_ifg, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["coherence"].values, expected_coh, rtol=1e-4, atol=1e-6)
