"""Band-matrix kernels against LAPACK (numpy.linalg): factor, solve, inverse inside the band, singular flags."""

from __future__ import annotations

import numpy as np
import pytest

from cryocube.banded import band_cholesky, band_inverse, band_solve, to_band, to_dense


def _spd_band(k: int, h: int, n: int, seed: int) -> np.ndarray:
    """``n`` random symmetric positive definite matrices ``(n, K, K)`` of half bandwidth ``h``."""
    rng = np.random.default_rng(seed)
    root = rng.normal(size=(n, k, k + 2))
    i, j = np.indices((k, k))
    return np.where(np.abs(i - j) <= h, root @ root.transpose(0, 2, 1), 0.0) + np.eye(k) * 3.0 * (h + 1) * (k + 2)


@pytest.mark.parametrize(("k", "h"), [(1, 0), (7, 0), (12, 3), (9, 8), (20, 3)])
def test_factor_solve_and_inverse_match_lapack(k: int, h: int) -> None:
    matrices = _spd_band(k, h, 6, k + h)
    dense = matrices.transpose(1, 2, 0)  # matrix axis last
    band = to_band(dense, h)
    np.testing.assert_array_equal(to_dense(band), dense)  # the band holds the whole matrix
    factor, zero = band_cholesky(band.copy())
    assert not zero.any()
    lower = np.linalg.cholesky(matrices)
    for i in range(h + 1):
        np.testing.assert_allclose(factor[: k - i, i], np.diagonal(lower, -i, axis1=1, axis2=2).T, rtol=1e-12, atol=1e-12)
    rhs = np.random.default_rng(0).normal(size=(k, 2, 6))
    expect = np.linalg.solve(matrices, rhs.transpose(2, 0, 1)).transpose(1, 2, 0)
    np.testing.assert_allclose(band_solve(factor, zero, rhs), expect, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(band_solve(factor, zero, rhs[:, 0]), expect[:, 0], rtol=1e-10, atol=1e-12)
    inverse = np.linalg.inv(matrices).transpose(1, 2, 0)
    i, j = np.indices((k, k))
    inside = (np.abs(i - j) <= h)[:, :, None]
    np.testing.assert_allclose(to_dense(band_inverse(factor, zero)), np.where(inside, inverse, 0.0), rtol=1e-10, atol=1e-13)


def test_singular_and_indefinite_matrices_are_flagged() -> None:
    good = np.diag([2.0, 3.0, 4.0])
    singular = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    indefinite = np.diag([1.0, -1.0, 1.0])
    uncovered = np.diag([1.0, 0.0, 1.0])  # an unknown no observation covers
    factor, zero = band_cholesky(to_band(np.stack([good, singular, indefinite, uncovered], axis=-1), 1))
    np.testing.assert_array_equal(zero.any(axis=0), [False, True, True, True])
    np.testing.assert_allclose(factor[:, 0, 0], np.sqrt([2.0, 3.0, 4.0]))
    assert np.isnan(band_inverse(factor, zero)[:, :, 1:]).any(axis=(0, 1)).all()  # not invertible: NaN, never a number
