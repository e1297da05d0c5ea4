r"""Filters for matched drift vectors (feature-tracking output): nothing is dropped, every rejection is recorded.

Input: a table of vectors with start ``x1, y1`` and end ``x2, y2`` (map units), as
:func:`cryocube.ice_features.match_features` returns. Output: the same rows with
``accepted`` (bool), ``rejected_by`` (the method that rejected the row, ``""``
otherwise), ``reason`` (why) and ``score`` (the method's test statistic).
Filters chain: rows rejected by an earlier call stay rejected and take no part
in the statistics of a later one.

Voronoi neighbourhood filter (Li, Li, Chen et al. 2022, IEEE JSTARS 15:6197-6202)
--------------------------------------------------------------------------------
The rule implemented (the published description gives the cell enlargement and
the 3-sigma test; the seeding and the iteration are ours, stated here):

1. **Cells**: the plane is cut into Voronoi cells around ``ceil(n / vectors_per_cell)``
   seeds, the k-means centres of the accepted start points (so cells follow the
   density of the vectors, about ``vectors_per_cell`` each; seeded, deterministic).
   A cell enlarged by 50 % about its seed ``s`` is ``1.5 V_s``; since
   ``V_s = {p : (p - s) . (t - s) <= |t - s|^2 / 2}`` over its Delaunay neighbours
   ``t``, a start point ``p`` lies in ``1.5 V_s`` exactly when
   ``(p - s) . (t - s) <= 0.75 |t - s|^2`` for every neighbour ``t``. (Enlarging
   matters: a cell of the vectors themselves, enlarged by 50 %, never contains
   another vector — the bisector of two points sits halfway.)
2. **Region** of vector ``i``: the accepted vectors in the enlarged cell of the
   seed nearest to ``i`` (its own cell plus a margin into the neighbouring ones,
   so vectors near a cell border are judged with their surroundings).
3. **Test**: regional mean ``m_i`` and standard deviation ``s_i`` of the
   displacement, per component (x, y), over the region *without* ``i``
   (with ``i`` included, its own deviation inflates ``s_i``); ``s_i`` is floored at
   ``min_sigma`` (default one pixel, the precision of a keypoint). ``i`` is
   rejected when ``|d_i - m_i| > n_sigma s_i`` (``n_sigma = 3``) in x or in y; the
   score is the larger ratio.
4. **Iteration**: per pass, only the highest-scoring outlier of each cell is
   rejected, then the statistics are recomputed, until no outlier remains
   (sigma clipping: one gross error cannot hide a second one by inflating
   ``s``). Regions with fewer than ``min_neighbours`` other vectors are not tested.

MCC filter (Li et al. 2022)
---------------------------
Each vector is compared with a maximum-cross-correlation reference field (the
``dx``, ``dy`` of :func:`cryocube.track_offsets`, given as ``reference_field``
or computed here from ``reference_image``/``secondary_image``), interpolated
(bilinear) to its start point; it is rejected when the vector differs from it by
more than ``tolerance`` (map units). Vectors where the field is NaN are kept.

Polynomial filter (``sea_ice_drift.ftlib.lstsq_filter``)
-------------------------------------------------------
A polynomial of degree ``degree`` in ``(x1, y1)`` is fitted by least squares to
each displacement component of the accepted vectors; vectors whose residual
magnitude exceeds ``n_sigma`` times the RMS residual (floored at ``min_sigma``)
are rejected; refit and repeat until stable (at most 10 passes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import sparse
from scipy.cluster.vq import kmeans2
from scipy.spatial import Delaunay, QhullError, cKDTree

__all__ = ["filter_vectors", "voronoi_outliers", "enlarged_cell_members", "polynomial_outliers", "FILTER_METHODS"]

FILTER_METHODS = ("voronoi", "mcc", "polynomial")
#: Largest number of rejection passes of the iterative filters.
MAX_PASSES = 50


def enlarged_cell_members(seeds: np.ndarray, points: np.ndarray, nearest: np.ndarray, enlarge: float) -> sparse.csr_matrix:
    """``(n_seeds, n_points)`` 0/1 matrix: point ``k`` lies in the Voronoi cell of seed ``s`` enlarged by ``enlarge``.

    ``nearest`` is each point's nearest seed. Candidates are the points whose
    nearest seed is ``s`` or a Delaunay neighbour of ``s``; each is tested against
    the half-planes of all of ``s``'s neighbours (module docstring, step 1).
    """
    n_seeds = len(seeds)
    indptr, indices = Delaunay(seeds).vertex_neighbor_vertices
    adjacency = sparse.csr_matrix((np.ones(indices.size), indices, indptr), shape=(n_seeds, n_seeds))
    owner = sparse.csr_matrix((np.ones(len(points)), (nearest, np.arange(len(points)))), shape=(n_seeds, len(points)))
    candidates = ((sparse.identity(n_seeds, format="csr") + adjacency) @ owner).tocoo()
    cs, ck = candidates.row, candidates.col
    counts = np.diff(indptr)[cs]
    pair = np.repeat(np.arange(cs.size), counts)
    first = np.repeat(indptr[cs], counts)
    t = indices[first + np.arange(pair.size) - np.repeat(np.cumsum(counts) - counts, counts)]
    edge = seeds[t] - seeds[cs[pair]]
    limit = 0.5 * enlarge * np.einsum("ij,ij->i", edge, edge)
    outside = np.einsum("ij,ij->i", points[ck[pair]] - seeds[cs[pair]], edge) > limit * (1 + 1e-12)
    inside = np.bincount(pair, weights=outside, minlength=cs.size) == 0
    return sparse.csr_matrix((np.ones(inside.sum()), (cs[inside], ck[inside])), shape=(n_seeds, len(points)))


def voronoi_outliers(points: np.ndarray, displacement: np.ndarray, *, enlarge: float = 1.5, n_sigma: float = 3.0,
                     min_sigma: float = 0.0, min_neighbours: int = 3, vectors_per_cell: int = 20,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Iterative Voronoi-region outlier test (module docstring): the numpy kernel of the ``"voronoi"`` method.

    Parameters
    ----------
    points
        ``(n, 2)`` start points (map units).
    displacement
        ``(n, 2)`` displacements (map units).
    enlarge
        Factor by which each Voronoi cell is enlarged about its seed (1.5: +50 %).
    n_sigma
        Rejection threshold in regional standard deviations.
    min_sigma
        Floor of the regional standard deviation (map units).
    min_neighbours
        Fewest other region members for the test to apply.
    vectors_per_cell
        Mean number of vectors per Voronoi cell (sets the number of seeds).
    seed
        Seed of the k-means initialisation.

    Returns
    -------
    rejected
        ``(n,)`` bool.
    score
        ``(n,)`` float: ``max_c |d_c - m_c| / s_c`` at the last pass that tested the
        vector (NaN where never tested).
    """
    n = len(points)
    rejected = np.zeros(n, dtype=bool)
    score = np.full(n, np.nan)
    n_seeds = max(3, int(np.ceil(n / vectors_per_cell)))
    if n < max(4, min_neighbours + 1) or len(np.unique(points, axis=0)) < n_seeds:
        return rejected, score
    centre = points.mean(axis=0)
    scale = max(float(np.abs(points - centre).max()), 1e-12)
    local = (points - centre) / scale
    seeds, _ = kmeans2(local, n_seeds, minit="++", seed=seed)
    seeds = np.unique(seeds, axis=0)
    nearest = cKDTree(seeds).query(local)[1]
    try:
        members = enlarged_cell_members(seeds, local, nearest, enlarge)
    except QhullError:  # degenerate (e.g. collinear) seeds: no regions to test
        return rejected, score
    d = displacement.astype(np.float64)
    for _ in range(MAX_PASSES):
        alive = (~rejected).astype(np.float64)
        count = members @ alive
        sums = np.stack([members @ (alive * d[:, c]) for c in (0, 1)], axis=1)
        squares = np.stack([members @ (alive * d[:, c] ** 2) for c in (0, 1)], axis=1)
        # leave-one-out statistics of each vector's home region (it is always in its own enlarged cell)
        k = count[nearest] - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (sums[nearest] - d) / k[:, None]
            var = (squares[nearest] - d**2 - k[:, None] * mean**2) / (k[:, None] - 1)
            z = np.max(np.abs(d - mean) / np.maximum(np.sqrt(np.maximum(var, 0.0)), min_sigma), axis=1)
        tested = ~rejected & (k >= max(min_neighbours, 2))
        score[tested] = z[tested]
        candidate = tested & (z > n_sigma)
        if not candidate.any():
            break
        best = np.full(len(seeds), -np.inf)
        np.maximum.at(best, nearest[candidate], z[candidate])
        rejected |= candidate & (z >= best[nearest])
    return rejected, score


def _design(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    return np.column_stack([x**a * y**b for a in range(degree + 1) for b in range(degree + 1 - a)])


def polynomial_outliers(points: np.ndarray, displacement: np.ndarray, *, degree: int = 2, n_sigma: float = 3.0,
                        min_sigma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Iterative polynomial-fit outlier test (module docstring): rejected mask and score (residual / sigma)."""
    n = len(points)
    centre = points.mean(axis=0) if n else np.zeros(2)
    scale = np.maximum(np.abs(points - centre).max(axis=0), 1e-12) if n else np.ones(2)
    a = _design(*((points - centre) / scale).T, degree)
    rejected = np.zeros(n, dtype=bool)
    score = np.full(n, np.nan)
    for _ in range(MAX_PASSES):
        ok = ~rejected
        if ok.sum() <= a.shape[1]:
            break
        coef, *_ = np.linalg.lstsq(a[ok], displacement[ok], rcond=None)
        residual = np.hypot(*(displacement - a @ coef).T)
        sigma = max(float(np.sqrt(np.mean(residual[ok] ** 2))), min_sigma)
        score = residual / sigma
        new = ok & (score > n_sigma)
        if not new.any():
            break
        rejected |= new
    return rejected, score


def _mcc_field(reference_field: xr.Dataset | None, reference_image: xr.DataArray | None,
               secondary_image: xr.DataArray | None, mcc_kwargs: dict | None) -> xr.Dataset:
    if reference_field is not None:
        missing = {"dx", "dy"} - set(reference_field.data_vars)
        if missing:
            raise ValueError(f"reference_field needs variables 'dx' and 'dy' (the output of track_offsets); missing {sorted(missing)}")
        return reference_field
    if reference_image is None or secondary_image is None:
        raise ValueError("method='mcc' needs reference_field, or reference_image and secondary_image to compute it")
    from cryocube.offsets import track_offsets

    return track_offsets(reference_image, secondary_image, **{"chip_px": 64, "step_px": 32, **(mcc_kwargs or {})})


def filter_vectors(
    vectors: pd.DataFrame,
    *,
    method: str = "voronoi",
    n_sigma: float = 3.0,
    enlarge: float = 1.5,
    min_neighbours: int = 3,
    vectors_per_cell: int = 20,
    min_sigma: float | None = None,
    degree: int = 2,
    reference_field: xr.Dataset | None = None,
    reference_image: xr.DataArray | None = None,
    secondary_image: xr.DataArray | None = None,
    tolerance: float | None = None,
    mcc_kwargs: dict | None = None,
) -> pd.DataFrame:
    """Flag outlying drift vectors; every row is kept, with ``accepted``, ``rejected_by``, ``reason`` and ``score``.

    Parameters
    ----------
    vectors
        Table with columns ``x1, y1, x2, y2`` (map units), e.g. from
        :func:`cryocube.ice_features.match_features`. Existing ``accepted`` /
        ``rejected_by`` / ``reason`` columns are honoured (filters chain).
    method
        ``"voronoi"``, ``"mcc"`` or ``"polynomial"`` (see the module docstring).
    n_sigma
        Threshold in standard deviations (voronoi, polynomial).
    enlarge
        Voronoi cell enlargement factor (1.5 = +50 %, Li et al. 2022).
    min_neighbours
        Voronoi: fewest other region members for a vector to be tested.
    vectors_per_cell
        Voronoi: mean number of vectors per cell (the number of seeds).
    min_sigma
        Floor of the standard deviations (map units); default one pixel
        (``vectors.attrs["pixel_size"]``) or 0 without it.
    degree
        Polynomial degree.
    reference_field
        MCC: a Dataset with ``dx``, ``dy`` (map units) on ``(y, x)`` — the output
        of :func:`cryocube.track_offsets`. Loaded (this function is eager).
    reference_image, secondary_image
        MCC: images to compute the field with ``track_offsets(**mcc_kwargs)`` when
        ``reference_field`` is None (the search radius must cover the drift).
    tolerance
        MCC: largest accepted difference to the field (map units); default 5 pixels.
    mcc_kwargs
        Extra arguments for ``track_offsets`` (defaults ``chip_px=64``, ``step_px=32``).

    Returns
    -------
    pandas.DataFrame
        A copy of ``vectors`` with the four columns updated; ``attrs`` gains
        ``filters`` (the list of methods and parameters applied).
    """
    if not isinstance(vectors, pd.DataFrame):
        raise TypeError(f"vectors must be a pandas DataFrame, got {type(vectors).__name__}")
    missing = [c for c in ("x1", "y1", "x2", "y2") if c not in vectors.columns]
    if missing:
        raise ValueError(f"vectors lacks columns {missing}: it needs x1, y1, x2, y2")
    if method not in FILTER_METHODS:
        raise ValueError(f"method must be one of {FILTER_METHODS}, got {method!r}")
    if not n_sigma > 0 or not enlarge >= 1:
        raise ValueError(f"n_sigma must be > 0 and enlarge >= 1, got {n_sigma!r}, {enlarge!r}")
    out = vectors.copy()
    out.attrs = dict(vectors.attrs)
    if "accepted" not in out.columns:
        out["accepted"] = True
        out["rejected_by"] = ""
        out["reason"] = ""
        out["score"] = np.nan
    pixel = vectors.attrs.get("pixel_size")
    floor = float(min_sigma) if min_sigma is not None else (float(min(abs(pixel[0]), abs(pixel[1]))) if pixel else 0.0)
    alive = np.flatnonzero(out["accepted"].to_numpy(bool))
    points = out[["x1", "y1"]].to_numpy(np.float64)[alive]
    disp = (out[["x2", "y2"]].to_numpy(np.float64) - out[["x1", "y1"]].to_numpy(np.float64))[alive]
    if method == "voronoi":
        rejected, score = voronoi_outliers(points, disp, enlarge=enlarge, n_sigma=n_sigma, min_sigma=floor,
                                           min_neighbours=int(min_neighbours), vectors_per_cell=int(vectors_per_cell))
        reason = f"more than {n_sigma:g} sigma from the mean of its Voronoi region (cell x{enlarge:g})"
        params = dict(method=method, n_sigma=n_sigma, enlarge=enlarge, min_neighbours=int(min_neighbours),
                      vectors_per_cell=int(vectors_per_cell), min_sigma=floor)
    elif method == "polynomial":
        rejected, score = polynomial_outliers(points, disp, degree=int(degree), n_sigma=n_sigma, min_sigma=floor)
        reason = f"residual to a degree-{int(degree)} polynomial drift field above {n_sigma:g} sigma"
        params = dict(method=method, n_sigma=n_sigma, degree=int(degree), min_sigma=floor)
    else:
        field = _mcc_field(reference_field, reference_image, secondary_image, mcc_kwargs)
        limit = float(tolerance) if tolerance is not None else 5.0 * (floor if floor > 0 else 1.0)
        px = xr.DataArray(points[:, 0], dims="vector")
        py = xr.DataArray(points[:, 1], dims="vector")
        ref = field[["dx", "dy"]].interp(x=px, y=py, method="linear").compute()
        diff = np.hypot(disp[:, 0] - ref.dx.values, disp[:, 1] - ref.dy.values)
        score = diff / limit
        rejected = np.nan_to_num(score, nan=0.0) > 1.0
        reason = f"differs from the MCC reference field by more than {limit:g}"
        params = dict(method=method, tolerance=limit)
    index = out.index[alive]
    out.loc[index, "score"] = score
    out.loc[index[rejected], "accepted"] = False
    out.loc[index[rejected], "rejected_by"] = method
    out.loc[index[rejected], "reason"] = reason
    out.attrs["filters"] = [*out.attrs.get("filters", []), params]
    return out
