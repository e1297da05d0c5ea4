"""Batched linear algebra of symmetric positive (semi-)definite band matrices.

Normal matrices of networks whose observations span contiguous runs of unknowns
(interferograms over dates in SBAS, pairs over intervals in the velocity series)
are banded: ``h``, the longest run minus one, is 3-4 for a small-baseline network
and ``K``, the number of unknowns, 15-100. These kernels factorise, solve and
invert (inside the band) every matrix of a batch at once: a Python loop over the
``K`` columns, each step vectorised over the matrices (last, contiguous axis), so
``K h^2`` operations per matrix instead of LAPACK's ``K^3``, and a matrix's result
does not depend on how many share the call.

Layout: the lower band ``(K, h + 1, n)``, ``[a, i] = A[a + i, a]`` (LAPACK's
column band storage); :func:`to_band` and :func:`to_dense` convert from and to
``(K, K, n)``.
"""

from __future__ import annotations

import numpy as np

#: Pivot <= PIVOT_RTOL x the original diagonal counts as zero (a singular or indefinite matrix).
PIVOT_RTOL = 1e-10


def band_cholesky(band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In-place Cholesky factor of lower band matrices ``(K, h + 1, n)`` (``[a, i] = N[a + i, a]``).

    Column-oriented (right-looking) so that every step uses basic slices only.
    Returns ``(L, zero)``: the factor in the same layout, and ``(K, n)`` bool zero
    pivots (pivot <= :data:`PIVOT_RTOL` x the diagonal), whose columns are set to
    zero (a positive semi-definite matrix has a zero column below a zero pivot).
    """
    k, hp1, n = band.shape
    h = hp1 - 1
    diag0 = band[:, 0].copy()
    zero = np.zeros((k, n), dtype=bool)
    for a in range(k):
        pivot = band[a, 0]
        ok = pivot > PIVOT_RTOL * diag0[a]
        zero[a] = ~ok
        root = np.sqrt(np.where(ok, pivot, 1.0))
        band[a, 0] = np.where(ok, root, 0.0)
        m = min(h, k - 1 - a)
        if m == 0:
            continue
        col = band[a, 1:m + 1]
        col *= np.where(ok, 1.0 / root, 0.0)  # L[a + i, a], i = 1..m
        for j in range(1, m + 1):  # N[a + i, a + j] -= L[a + i, a] L[a + j, a], i = j..m
            band[a + j, 0:m - j + 1] -= col[j - 1:m] * col[j - 1]
    return band, zero


def _inverse_pivots(factor: np.ndarray, zero: np.ndarray, extra: int) -> np.ndarray:
    """``1 / L[a, a]`` ``(K, 1 x extra, n)``, 0 at zero pivots."""
    inv_diag = np.where(zero, 0.0, 1.0 / np.where(zero, 1.0, factor[:, 0]))
    return inv_diag.reshape(inv_diag.shape[0], *([1] * extra), inv_diag.shape[1])


def band_forward(factor: np.ndarray, zero: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``L z = rhs`` for band factors of :func:`band_cholesky` (``rhs`` ``(K, ..., n)``; zero pivots give 0)."""
    k, hp1, _ = factor.shape
    h, extra = hp1 - 1, rhs.ndim - 2
    inv_diag = _inverse_pivots(factor, zero, extra)
    lower = factor.reshape(k, hp1, *([1] * extra), factor.shape[2])
    z = rhs.copy()
    for a in range(k):  # column by column
        z[a] *= inv_diag[a]
        m = min(h, k - 1 - a)
        z[a + 1:a + m + 1] -= lower[a, 1:m + 1] * z[a]
    return z


def band_solve(factor: np.ndarray, zero: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``L L^T x = rhs`` for band factors of :func:`band_cholesky` (``rhs`` ``(K, ..., n)``; zero pivots give 0)."""
    k, hp1, _ = factor.shape
    h, extra = hp1 - 1, rhs.ndim - 2
    inv_diag = _inverse_pivots(factor, zero, extra)
    lower = factor.reshape(k, hp1, *([1] * extra), factor.shape[2])
    x = band_forward(factor, zero, rhs)
    for a in range(k - 1, -1, -1):  # backward: L^T x = z
        m = min(h, k - 1 - a)
        if m:
            x[a] -= (lower[a, 1:m + 1] * x[a + 1:a + m + 1]).sum(axis=0)
        x[a] *= inv_diag[a]
    return x


def band_inverse(factor: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """The band ``(K, h + 1, n)`` of ``(L L^T)^-1`` (same layout) for factors of :func:`band_cholesky`.

    Takahashi's recursion (Takahashi, Fagan, Chin 1973): with ``L = U D^1/2``
    (``U`` unit lower), the entries ``S`` of the inverse inside the band satisfy,
    from the last column back, ``S[j, i] = -sum_k S[j, k] U[k, i]`` (``j > i``) and
    ``S[i, i] = 1 / D[i] - sum_k U[k, i] S[k, i]``, ``k = i + 1 .. i + h``: they only
    read entries inside the band. ``K h^2`` operations per matrix instead of
    ``K^2 h`` for ``L^-1``. NaN where a pivot is zero.
    """
    k, hp1, n = factor.shape
    h = hp1 - 1
    pivot = np.where(zero, np.nan, factor[:, 0])
    unit = factor[:, 1:] / pivot[:, None, :]  # U[a + d, a], d = 1..h
    inv = np.zeros((k, hp1, n))  # S[a + d, a], d = 0..h
    for i in range(k - 1, -1, -1):
        m = min(h, k - 1 - i)
        for d in range(1, m + 1):  # S[i + d, i] = -sum_e S[i + d, i + e] U[i + e, i]
            total = np.zeros(n)
            for e in range(1, m + 1):
                lo, hi = min(d, e), max(d, e)
                total += inv[i + lo, hi - lo] * unit[i, e - 1]
            inv[i, d] = -total
        inv[i, 0] = 1.0 / pivot[i] ** 2 - sum(unit[i, e - 1] * inv[i, e] for e in range(1, m + 1))
    return inv


def to_band(dense: np.ndarray, h: int) -> np.ndarray:
    """Lower band ``(K, h + 1, n)`` (``[a, i] = A[a + i, a]``, 0 past the end) of symmetric matrices ``(K, K, n)``."""
    k = dense.shape[0]
    band = np.zeros((k, h + 1, dense.shape[2]))
    for i in range(min(h, k - 1) + 1):
        band[:k - i, i] = dense[np.arange(i, k), np.arange(k - i)]
    return band


def to_dense(band: np.ndarray) -> np.ndarray:
    """Symmetric matrices ``(K, K, n)`` from their lower band ``(K, h + 1, n)`` (zero outside the band)."""
    k, hp1, n = band.shape
    dense = np.zeros((k, k, n))
    for i in range(min(hp1 - 1, k - 1) + 1):
        rows, cols = np.arange(i, k), np.arange(k - i)
        dense[rows, cols] = band[:k - i, i]
        dense[cols, rows] = band[:k - i, i]
    return dense
