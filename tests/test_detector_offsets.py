"""Sentinel-2 detector jumps: known jumps of +-3 m with 1 m noise are estimated on stable ground and removed."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cryocube.detector_offsets import correct_detector_offsets
from cryocube.testing import raise_if_dask_computes

N_DETECTORS = 12


def _footprints(shape: tuple[int, int], shift_px: float = 0.0) -> np.ndarray:
    """Slanted detector stripes (as MSI footprints are across track), numbered 0..11."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return (((cols + 0.3 * rows + shift_px) // (shape[1] / N_DETECTORS)) % N_DETECTORS).astype(np.int16)


def _scene(n_pairs: int = 3, shape: tuple[int, int] = (120, 180), seed: int = 0):
    rng = np.random.default_rng(seed)
    coords = {"y": 1000.0 - 20.0 * np.arange(shape[0]), "x": 20.0 * np.arange(shape[1])}
    labels = _footprints(shape)
    jumps = rng.uniform(-3, 3, (n_pairs, 2, N_DETECTORS))  # m, per pair, per component
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    glacier = np.abs(rows - shape[0] / 2) < shape[0] / 5  # a band of fast ice, not stable
    flow = np.where(glacier, 150.0, 0.0)
    dx = flow + jumps[:, 0][:, labels] + rng.normal(0, 1, (n_pairs, *shape))
    dy = -0.3 * flow + jumps[:, 1][:, labels] + rng.normal(0, 1, (n_pairs, *shape))
    dx[:, 5:9, 20:40] = np.nan  # gaps
    ds = xr.Dataset({"dx": (("pair", "y", "x"), dx.astype(np.float32), {"units": "m"}),
                     "dy": (("pair", "y", "x"), dy.astype(np.float32), {"units": "m"})}, coords=coords)
    footprint = xr.DataArray(labels, dims=("y", "x"), coords=coords)
    stable = xr.DataArray(~glacier, dims=("y", "x"), coords=coords)
    return ds, footprint, stable, jumps, glacier


def test_jumps_of_3_m_with_1_m_noise_are_removed_to_below_0_2_m():
    ds, footprint, stable, jumps, glacier = _scene()
    out = correct_detector_offsets(ds, footprint, stable_mask=stable).compute()
    # the estimated jumps are the true ones (1 m noise, >= 300 stable points per detector)
    np.testing.assert_allclose(out.dx_detector_offset.values, jumps[:, 0], atol=0.2)
    np.testing.assert_allclose(out.dy_detector_offset.values, jumps[:, 1], atol=0.2)
    labels = footprint.values
    for name in ("dx", "dy"):
        for k in range(N_DETECTORS):
            stable_k = (labels == k) & ~glacier
            medians = np.nanmedian(out[name].values[:, stable_k], axis=1)
            assert np.all(np.abs(medians) < 0.2), (name, k, medians)
    # the moving ice keeps its motion: only the jump is removed
    assert abs(np.nanmedian(out.dx.values[:, glacier]) - 150.0) < 0.3


def test_pairs_of_footprints_and_speed_map_as_stable_mask():
    ds, footprint, stable, jumps, glacier = _scene(n_pairs=1, seed=3)
    speed = xr.DataArray(np.where(glacier, 900.0, 5.0), dims=("y", "x"), coords=footprint.coords)
    secondary = footprint.copy(data=_footprints(footprint.shape, shift_px=7))
    out = correct_detector_offsets(ds, (footprint, secondary), stable_mask=speed).compute()
    assert out.sizes["detector"] == N_DETECTORS**2
    assert out.attrs["detector_correction"].startswith("Li, Mao et al. 2023")
    corrected = out.dx.values[0][~glacier]
    assert np.nanstd(corrected) < 1.1  # jumps gone: only the 1 m noise is left
    assert np.nanstd(ds.dx.values[0][~glacier]) > 1.5


def test_lazy_chunked_and_equal_to_numpy():
    ds, footprint, stable, _, _ = _scene()
    with raise_if_dask_computes():
        lazy = correct_detector_offsets(ds.chunk({"pair": 1, "y": 50, "x": 70}), footprint, stable_mask=stable)
    xr.testing.assert_allclose(lazy.compute(), correct_detector_offsets(ds, footprint, stable_mask=stable).compute())


def test_too_few_stable_points_are_left_uncorrected_and_reported():
    ds, footprint, stable, _, _ = _scene(n_pairs=1)
    few = stable & (footprint != 4)
    out = correct_detector_offsets(ds, footprint, stable_mask=few, min_points=5).compute()
    assert np.isnan(out.dx_detector_offset.sel(detector=4)).all() and (out.n_stable.sel(detector=4) == 0).all()
    in_4 = footprint.values == 4
    np.testing.assert_array_equal(out.dx.values[0][in_4], ds.dx.values[0][in_4])


def test_errors_name_the_problem():
    ds, footprint, stable, _, _ = _scene(n_pairs=1)
    with pytest.raises(ValueError, match="no variable"):
        correct_detector_offsets(ds, footprint, stable_mask=stable, variables=["vx"])
    with pytest.raises(ValueError, match="does not cover the offsets' 'x' range"):
        correct_detector_offsets(ds, footprint.isel(x=slice(0, 50)), stable_mask=stable)
    with pytest.raises(TypeError, match="detector_footprints must be"):
        correct_detector_offsets(ds, footprint.values, stable_mask=stable)
    with pytest.raises(ValueError, match="whole detector numbers"):
        correct_detector_offsets(ds, footprint + 0.5, stable_mask=stable)

