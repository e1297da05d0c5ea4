"""Goldstein filter and SNAPHU unwrapping against known truth: identity, noise reduction, congruence, masks, chunking, laziness, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from cryocube.testing import raise_if_dask_computes
from cryocube.unwrap import align_components_kernel, goldstein, goldstein_kernel, unwrap, unwrap_kernel


def bowl(shape: tuple[int, int], curvature: float = 0.002) -> np.ndarray:
    """A smooth quadratic phase (rad); its steepest one-pixel step is below π for these sizes."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    return curvature * ((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2)


def noisy(phase: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.exp(1j * phase) + sigma * (rng.standard_normal(phase.shape) + 1j * rng.standard_normal(phase.shape))


def as_da(values: np.ndarray) -> xr.DataArray:
    return xr.DataArray(values, dims=("y", "x"), coords={"y": np.arange(values.shape[0]), "x": np.arange(values.shape[1])})


def phase_rmse(z: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.angle(z * np.exp(-1j * truth)) ** 2)))


# --- Goldstein ------------------------------------------------------------------------------------


def test_goldstein_alpha_zero_is_identity():
    z = noisy(bowl((70, 90)), 0.7)
    np.testing.assert_allclose(goldstein_kernel(z, alpha=0.0, fft_px=16), z, atol=1e-5)


def test_goldstein_reduces_phase_noise_and_keeps_fringes():
    truth = bowl((128, 144))
    z = noisy(truth, 0.5)
    filtered = goldstein_kernel(z, alpha=0.8, fft_px=32)
    before, after = phase_rmse(z, truth), phase_rmse(filtered, truth)
    assert before > 0.5
    assert after < before / 4
    # no bias: the mean phase error stays near zero
    assert abs(np.angle(np.mean(filtered * np.exp(-1j * truth)))) < 0.02


def test_goldstein_keeps_nan_and_reads_real_phase():
    truth = bowl((48, 52))
    z = np.exp(1j * truth)
    z[10:14, 20:25] = np.nan
    out = goldstein_kernel(z, alpha=0.5, fft_px=16)
    assert np.isnan(out[10:14, 20:25]).all() and np.isfinite(np.delete(out.ravel(), np.flatnonzero(np.isnan(z)))).all()
    np.testing.assert_allclose(goldstein_kernel(truth, alpha=0.5, fft_px=16), goldstein_kernel(np.exp(1j * truth), alpha=0.5, fft_px=16))


@pytest.mark.parametrize("chunks", [{"y": -1, "x": -1}, {"y": 37, "x": 23}, {"y": (5, 60, 225), "x": (50, 3, 17)}])
def test_goldstein_same_for_any_chunking(chunks):
    z = noisy(bowl((290, 70)), 0.6, seed=3)  # taller than one 256-row strip of the kernel
    expected = goldstein_kernel(z, alpha=0.7, fft_px=32)
    got = goldstein(as_da(z).chunk(chunks), alpha=0.7, fft_px=32).values
    np.testing.assert_allclose(got, expected, atol=1e-5)


@settings(max_examples=8, deadline=None)
@given(ny=st.integers(20, 60), nx=st.integers(20, 60), cy=st.integers(3, 30), cx=st.integers(3, 30),
       alpha=st.floats(0.0, 1.0), seed=st.integers(0, 100))
def test_goldstein_chunking_property(ny, nx, cy, cx, alpha, seed):
    z = noisy(bowl((ny, nx)), 0.5, seed=seed)
    z[np.random.default_rng(seed).random((ny, nx)) < 0.05] = np.nan
    expected = goldstein_kernel(z, alpha=alpha, fft_px=8)
    got = goldstein(as_da(z).chunk({"y": cy, "x": cx}), alpha=alpha, fft_px=8).values
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_goldstein_is_lazy_and_carries_attrs():
    ifg = as_da(noisy(bowl((64, 64)), 0.3)).chunk(32)
    with raise_if_dask_computes():
        out = goldstein(ifg, alpha=0.5, fft_px=16)
    assert out.dims == ("y", "x") and out.dtype == np.complex64
    assert '"alpha": 0.5' in out.attrs["cryocube_parameters"] and "long_name" in out.attrs


@pytest.mark.parametrize("kwargs, match", [({"alpha": 1.5}, "alpha"), ({"alpha": 0.5, "fft_px": 30}, "fft_px"),
                                           ({"alpha": 0.5, "fft_px": 4}, "fft_px")])
def test_goldstein_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        goldstein(as_da(np.ones((16, 16), complex)), **kwargs)


def test_goldstein_bad_dims():
    with pytest.raises(ValueError, match="ifg"):
        goldstein(xr.DataArray(np.ones((16, 16), complex), dims=("a", "b")))
    with pytest.raises(TypeError, match="ifg"):
        goldstein(np.ones((16, 16), complex))


# --- unwrapping -----------------------------------------------------------------------------------


def test_unwrap_recovers_smooth_phase_up_to_one_constant_cycle():
    truth = bowl((80, 100), curvature=0.004)  # up to ~0.8 rad per pixel, 30+ rad in total
    assert np.abs(np.diff(truth, axis=1)).max() < np.pi
    unwrapped, labels = unwrap_kernel(np.exp(1j * truth), np.full(truth.shape, 0.9), min_coherence=0.3)
    offset = unwrapped - truth
    cycles = np.round(np.nanmedian(offset) / (2 * np.pi))
    np.testing.assert_allclose(offset, 2 * np.pi * cycles, atol=1e-4)
    assert set(np.unique(labels)) == {1}


def test_unwrap_noisy_is_congruent_and_accurate():
    truth = bowl((90, 90), curvature=0.003)
    z = goldstein_kernel(noisy(truth, 0.4, seed=1), alpha=0.8, fft_px=16)
    unwrapped, _ = unwrap_kernel(z, np.full(truth.shape, 0.8), min_coherence=0.3, nlooks=5)
    wrapped_difference = np.angle(np.exp(1j * (unwrapped - np.angle(z))))
    np.testing.assert_allclose(wrapped_difference, 0, atol=1e-3)  # congruent with the input
    err = unwrapped - truth
    err -= 2 * np.pi * np.round(np.median(err) / (2 * np.pi))
    assert np.abs(err).max() < 1.0 and np.sqrt(np.mean(err**2)) < 0.2


def test_unwrap_masks_low_coherence_and_separates_components():
    truth = bowl((60, 90), curvature=0.003)
    coherence = np.full(truth.shape, 0.9)
    coherence[:, 40:48] = 0.05  # a decorrelated band splits the scene
    z = np.exp(1j * truth)
    z[5, 5] = np.nan
    unwrapped, labels = unwrap_kernel(z, coherence, min_coherence=0.3)
    assert np.isnan(unwrapped[:, 40:48]).all() and (labels[:, 40:48] == 0).all()
    assert np.isnan(unwrapped[5, 5]) and labels[5, 5] == 0
    left, right = labels[:, :40], labels[:, 48:]
    assert len(np.unique(left[left > 0])) == 1 and len(np.unique(right[right > 0])) == 1
    assert np.unique(left[left > 0])[0] != np.unique(right[right > 0])[0]


def test_unwrap_wrapper_lazy_and_matches_kernel_for_any_chunking():
    truth = bowl((50, 70), curvature=0.004)
    z = noisy(truth, 0.2, seed=2)
    coherence = np.full(truth.shape, 0.85)
    expected, labels = unwrap_kernel(z, coherence, min_coherence=0.3, nlooks=3)
    for chunks in ({"y": -1, "x": -1}, {"y": 13, "x": (30, 7, 33)}):
        with raise_if_dask_computes():
            ds = unwrap(as_da(z).chunk(chunks), as_da(coherence).chunk(chunks), min_coherence=0.3, nlooks=3)
        assert ds.unwrapped_phase.attrs["units"] == "rad" and "snaphu" in ds.attrs["cryocube_parameters"]
        np.testing.assert_array_equal(ds.unwrapped_phase.values, expected)
        np.testing.assert_array_equal(ds.connected_component.values, labels)


@pytest.mark.parametrize("kwargs, match", [({"method": "icu"}, "method"), ({"cost": "topo"}, "cost"),
                                           ({"min_coherence": 1.2}, "min_coherence"), ({"nlooks": 0.5}, "nlooks")])
def test_unwrap_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        unwrap(as_da(np.ones((8, 8), complex)), as_da(np.ones((8, 8))), **kwargs)


def test_unwrap_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        unwrap(as_da(np.ones((8, 8), complex)), as_da(np.ones((8, 9))))


def test_align_components_removes_known_cycle_offsets():
    truth = bowl((20, 30))
    labels = np.ones(truth.shape, np.uint32)
    labels[:, 15:] = 2
    shifted = truth + np.where(labels == 1, 2 * np.pi * 3, -2 * np.pi)
    stable = np.zeros(truth.shape, bool)
    stable[:3, :] = True
    reference = truth - 2 * np.pi * np.round(np.where(labels == 1, np.median(truth[:3, :15]), np.median(truth[:3, 15:])) / (2 * np.pi))
    np.testing.assert_allclose(align_components_kernel(shifted, labels, stable), reference, atol=1e-5)
