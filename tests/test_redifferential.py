"""Re-differential D-InSAR and the TOPS burst-overlap ramp against exact truth (closed forms, the synthetic glacier)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cryocube.glacier_insar_scenes import glacier_interferogram
from cryocube.redifferential import (S1_WAVELENGTH_M, azimuth_component, burst_overlap_ramp, los_unit_vector, redifferential_unwrap,
                                     simulate_phase, tops_doppler_centroid)
from cryocube.testing import raise_if_dask_computes
from cryocube.unwrap import align_components, unwrap


@pytest.fixture(scope="module")
def scene() -> xr.Dataset:
    return glacier_interferogram(shape=(96, 150), half_width_px=26.0, seed=1)


def offsets_velocity(scene: xr.Dataset) -> xr.Dataset:
    return scene[["vx_offsets", "vy_offsets"]].rename(vx_offsets="vx", vy_offsets="vy")


def grid(shape: tuple[int, int]) -> dict:
    return {"y": np.arange(shape[0]), "x": np.arange(shape[1])}


# --- geometry and closed forms --------------------------------------------------------------------


def test_los_unit_vector_closed_form():
    east, north, up = los_unit_vector(30.0, 0.0)  # flying north, looking east: the ground-to-radar vector points west and up
    np.testing.assert_allclose((east, north, up), (-0.5, 0.0, np.sqrt(3) / 2), atol=1e-12)
    east, north, up = los_unit_vector(30.0, 180.0)  # flying south, looking west
    np.testing.assert_allclose((east, north, up), (0.5, 0.0, np.sqrt(3) / 2), atol=1e-12)
    assert np.isclose(np.sum(np.square(los_unit_vector(39.0, -12.0))), 1.0)
    np.testing.assert_allclose(azimuth_component(3.0, 4.0, 90.0), 3.0, atol=1e-12)  # flying east: the east component


def test_simulate_phase_from_velocity_offsets_and_los_velocity():
    shape = (4, 5)
    vel = xr.Dataset({"vx": (("y", "x"), np.full(shape, 10.0)), "vy": (("y", "x"), np.full(shape, -5.0))}, coords=grid(shape))
    dt = 36.525  # 0.1 yr: 1 m east, 0.5 m south
    los = (-0.6, 0.1, 0.79)
    d_los = -0.6 * 1.0 + 0.1 * -0.5
    expected = -4 * np.pi / S1_WAVELENGTH_M * d_los
    np.testing.assert_allclose(simulate_phase(vel, dt_days=dt, los_unit_vector=los), expected)
    offs = xr.Dataset({"dx": vel.vx / 10, "dy": vel.vy / 10, "dz": vel.vx * 0 + 0.2})
    np.testing.assert_allclose(simulate_phase(offs, los_unit_vector=los), -4 * np.pi / S1_WAVELENGTH_M * (d_los + 0.79 * 0.2))
    los_velocity = xr.DataArray(np.full(shape, 3.65), dims=("y", "x"))  # 3.65 m/yr towards the radar: 0.01 m in 1 day
    out = simulate_phase(los_velocity, dt_days=1.0)
    np.testing.assert_allclose(out, -4 * np.pi / S1_WAVELENGTH_M * 0.01 * 365 / 365.25)
    assert out.attrs["units"] == "rad"


def test_simulate_phase_errors():
    vel = xr.Dataset({"vx": (("y", "x"), np.ones((2, 2))), "vy": (("y", "x"), np.ones((2, 2)))})
    with pytest.raises(ValueError, match="dt_days"):
        simulate_phase(vel, los_unit_vector=(1, 0, 0))
    with pytest.raises(ValueError, match="vx, vy"):
        simulate_phase(vel.rename(vx="u"), dt_days=6, los_unit_vector=(1, 0, 0))
    with pytest.raises(ValueError, match="incidence_deg"):
        simulate_phase(vel, dt_days=6)
    with pytest.raises(TypeError, match="velocity_or_offsets"):
        simulate_phase(np.ones((2, 2)), dt_days=6)


def test_burst_overlap_jump_closed_form():
    # ESD relation: delta_phi = 2 pi * delta_f_DC * delta_x / v_g
    assert np.isclose(burst_overlap_ramp(0.5, 4500.0, ground_velocity_m_s=6850.0), 2 * np.pi * 4500 * 0.5 / 6850)
    burst, overlap, df = 40, 6, 4500.0
    f = tops_doppler_centroid(150, burst_rows=burst, overlap_rows=overlap, overlap_doppler_hz=df)
    stride = burst - overlap
    steps = np.diff(f)
    seams = np.flatnonzero(steps < 0)
    np.testing.assert_allclose(seams + 0.5, (burst - 1) / 2 + (np.arange(len(seams)) + 0.5) * stride)  # mid-overlap seams
    np.testing.assert_allclose(steps[seams], df / stride - df)  # one row of slope minus the overlap Doppler difference
    np.testing.assert_allclose(np.delete(steps, seams), df / stride)
    with pytest.raises(ValueError, match="overlap_rows"):
        tops_doppler_centroid(10, burst_rows=5, overlap_rows=5, overlap_doppler_hz=df)


def test_burst_ramp_correction_restores_truth():
    shape, dt = (120, 60), 6.0
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = 0.002 * (yy - 60.0) ** 2 + 0.03 * xx
    v_az = xr.DataArray(np.full(shape, 29.5), dims=("y", "x"), coords=grid(shape))  # m/yr: 0.48 m in 6 days, a ~2 rad seam jump
    f_dc = xr.DataArray(tops_doppler_centroid(shape[0], burst_rows=40, overlap_rows=6, overlap_doppler_hz=4500.0)[:, None] * np.ones(shape),
                        dims=("y", "x"), coords=grid(shape))
    ramp = burst_overlap_ramp(29.5 * dt / 365.25, f_dc.values)
    ifg = xr.DataArray(np.exp(1j * (truth + ramp)), dims=("y", "x"), coords=grid(shape))
    coherence = xr.full_like(v_az, 0.9)
    stable = xr.DataArray(np.zeros(shape, bool), dims=("y", "x"), coords=grid(shape))
    stable[60, 0] = True  # truth is 0 there
    common = dict(simulated_phase_from=xr.zeros_like(v_az).assign_attrs(units="rad"), coherence=coherence, dt_days=dt, stable=stable)
    corrected = redifferential_unwrap(ifg, azimuth_velocity=v_az, doppler_centroid_hz=f_dc, **common)
    np.testing.assert_allclose(corrected.unwrapped_phase, truth, atol=1e-3)
    np.testing.assert_allclose(corrected.burst_ramp, ramp, atol=1e-5)
    plain = redifferential_unwrap(ifg, **common)
    assert np.abs(plain.unwrapped_phase - truth).max() > 0.5
    with pytest.raises(ValueError, match="doppler_centroid_hz"):
        redifferential_unwrap(ifg, azimuth_velocity=v_az, **common)


# --- the synthetic glacier ------------------------------------------------------------------------


def test_glacier_scene_is_three_times_the_unwrapping_limit(scene):
    phase = scene.true_phase.values
    steepest = max(np.abs(np.diff(phase, axis=0)).max(), np.abs(np.diff(phase, axis=1)).max())
    assert np.isclose(steepest, 3 * np.pi)
    assert np.abs(phase[scene.stable.values]).max() == 0
    np.testing.assert_allclose(scene.true_los_displacement, -S1_WAVELENGTH_M / (4 * np.pi) * phase)
    residual = phase - simulate_phase(offsets_velocity(scene), dt_days=6.0, los_unit_vector=scene.attrs["los_unit_vector"]).values
    assert max(np.abs(np.diff(residual, axis=0)).max(), np.abs(np.diff(residual, axis=1)).max()) < np.pi


def test_direct_unwrapping_fails_and_redifferential_recovers_truth(scene):
    truth = scene.true_los_displacement.values
    direct = align_components(unwrap(scene.interferogram, scene.coherence, nlooks=20), scene.stable)
    direct_error = -S1_WAVELENGTH_M / (4 * np.pi) * direct.unwrapped_phase.values - truth
    assert np.sqrt(np.nanmean(direct_error**2)) > 0.05  # > 5 cm LoS: cycles lost across the shear margins

    out = redifferential_unwrap(scene.interferogram, simulated_phase_from=offsets_velocity(scene), coherence=scene.coherence, dt_days=6.0,
                                los_unit_vector=scene.attrs["los_unit_vector"], stable=scene.stable, nlooks=20)
    error = out.los_displacement.values - truth
    kept = np.isfinite(error)
    assert kept[scene.true_coherence.values > 0.5].mean() > 0.97
    assert np.abs(error[kept]).max() < 0.01  # < 1 cm LoS everywhere it is unwrapped
    assert out.los_displacement.attrs["units"] == "m"
    # congruence: the result differs from the interferogram's wrapped phase by whole cycles
    wrapped = np.angle(np.exp(1j * (out.unwrapped_phase.values - np.angle(scene.interferogram.values))))
    np.testing.assert_allclose(wrapped[kept], 0, atol=1e-3)


def test_redifferential_lazy_and_chunk_invariant(scene):
    kwargs = dict(dt_days=6.0, los_unit_vector=scene.attrs["los_unit_vector"], nlooks=20, goldstein_alpha=0.5, fft_px=16)
    expected = redifferential_unwrap(scene.interferogram, simulated_phase_from=offsets_velocity(scene), coherence=scene.coherence,
                                     stable=scene.stable, **kwargs).compute()
    chunked = scene.chunk({"y": 29, "x": 41})
    with raise_if_dask_computes():
        out = redifferential_unwrap(chunked.interferogram, simulated_phase_from=offsets_velocity(chunked), coherence=chunked.coherence,
                                    stable=chunked.stable, **kwargs)
    assert '"goldstein_alpha": 0.5' in out.attrs["cryocube_parameters"]
    np.testing.assert_allclose(out.unwrapped_phase.values, expected.unwrapped_phase.values, atol=1e-4)
    np.testing.assert_array_equal(out.connected_component.values, expected.connected_component.values)


def test_redifferential_rejects_real_interferogram(scene):
    with pytest.raises(TypeError, match="interferogram"):
        redifferential_unwrap(scene.true_phase, simulated_phase_from=offsets_velocity(scene), coherence=scene.coherence, dt_days=6.0,
                              los_unit_vector=(1, 0, 0))
