"""Glacier velocity time series from a redundant network of image pairs.

Offset tracking between many scene pairs (short and long separations, Sentinel-1
and Sentinel-2) measures, per pixel, the *mean* velocity over each pair's time
span. Following Li, Mao et al. (2023, *Int. J. Appl. Earth Obs. Geoinf.* 121,
103378) the dates are the nodes and the pairs the edges of a network, and the
velocity over each interval between consecutive unique dates is estimated per
pixel by weighted least squares after removing gross errors.

- :func:`make_pairs` builds the pair network of one cube (or of an S1 and an S2
  cube merged by time): a :class:`PairNetwork` with the pair table, the edge list
  and the connected components of the date graph.
- :func:`invert_velocity` inverts pair velocities ``(pair, y, x)`` into a time
  series ``(time, y, x)``. Kernel: :func:`invert_pairs_kernel` (numpy, batched over
  pixels); wrapper: ``xr.apply_ufunc(..., dask="parallelized")``; lazy.

Model
-----
With sorted unique dates ``t_0 < ... < t_K`` the unknowns are ``v_k``, the mean
velocity over interval ``k = [t_k, t_{k+1})``. A pair ``(d1, d2)`` measures

    v_pair = sum_k v_k * overlap_k / (d2 - d1),

``overlap_k`` the length of ``[t_k, t_{k+1}) ∩ [d1, d2)``; these weights are the
rows of the design matrix ``A`` (``P x K``).

Which intervals a pixel's pairs determine
----------------------------------------
Interval ``k`` is determined iff ``e_k`` lies in the row space of ``A`` restricted
to the pixel's valid pairs. Because every row is (a multiple of) the indicator of a
contiguous run of intervals, this is exactly a graph property: writing
``c_j`` for the indicator of ``[t_0, t_j)`` (``c_0 = 0``; ``c_1..c_K`` a basis), a
pair ``(i, j)`` spans ``c_j - c_i`` and ``e_k = c_{k+1} - c_k``; the span of
``{c_j - c_i : (i, j) an edge}`` is ``{sum_v b_v c_v : sum of b_v over every
component not holding t_0 is 0}``, so

    interval k is determined  <=>  dates t_k and t_{k+1} are in the same
                                   connected component of the pixel's network.

(A pair spanning two intervals alone connects ``t_0`` and ``t_2`` but not ``t_1``:
both intervals stay undetermined, as the pseudo-inverse test ``‖(I - A⁺A) e_k‖ = 0``
says; the test suite checks the equivalence on random networks.) The null space of
``A`` is spanned by ``z_C`` (``z_C[k] = 1[t_{k+1} ∈ C] - 1[t_k ∈ C]``) for the
components ``C`` not holding ``t_0``. With ``M = Z Zᵀ`` the matrix ``N + M``
(``N = AᵀWA``) is non-singular and ``(N + M)⁻¹ = N⁺ + M⁺`` (orthogonal ranges), so
one batched ``np.linalg.inv`` gives the minimum-norm least-squares solution and,
for determined intervals, the exact variances ``diag(N⁺)``. This is the
least-squares solution within every connected component at once; undetermined
intervals are set to NaN, never to an invented value.

Solver
------
A pair covers a contiguous run of intervals, so ``N`` is a band matrix (half
bandwidth: the longest pair's span in intervals, minus one; the regularized
method's penalty is tridiagonal). Pixels whose network is one piece (``M = 0``)
are solved by a banded Cholesky factorisation, banded substitution and the
band of ``N⁻¹`` (:mod:`cryocube.banded`: ``O(K b²)`` instead of ``O(K³)``,
vectorised over pixels);
the band of ``N⁻¹`` holds every variance and every pair's leverage. Pixels whose
network is split, and any whose band factor fails, take the ``np.linalg.inv``
route above.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse
import scipy.sparse.csgraph
import xarray as xr

import cryocube
from cryocube import conventions as cv
from cryocube.banded import band_cholesky, band_inverse, band_solve, to_band, to_dense
from cryocube.chunking import core_chunked

#: Days per (Julian) year.
DAYS_PER_YEAR = 365.25

#: Scale from the median absolute deviation to a Gaussian standard deviation.
MAD_TO_SIGMA = 1.4826

#: Inversion methods of :func:`invert_velocity`.
METHODS = ("connected-components", "regularized")

#: Pixels solved together inside the kernel (bounds the temporaries: about
#: ``BATCH_PIXELS * K**2 * 8`` bytes per normal matrix).
BATCH_PIXELS = 2048

#: Robust refits at most (each refits only the pixels whose inlier set changed).
MAX_ITERATIONS = 5

#: Cauchy-weighted refits before the hard rejection, and the Cauchy tuning constant
#: (95 % efficiency for Gaussian residuals).
IRLS_ITERATIONS = 2
CAUCHY_C = 2.385
#: Smallest Cauchy weight of the robust start: keeps every pair's network connected and the system well posed.
ROBUST_WEIGHT_FLOOR = 1e-6

_VARIABLE_ATTRS = {name: cv.VARIABLE_ATTRS[name] for name in ("vx", "vy", "v", "vx_error", "vy_error")}


# =========================================================================== pair network
#: Sensors whose pairs must share the relative orbit (speckle and viewing geometry differ between orbits).
SAR_SENSORS = ("sentinel-1",)


def sensor_of(platform: Any) -> str:
    """Sensor family of a STAC ``platform`` value: ``"sentinel-1a"`` -> ``"sentinel-1"``.

    Values that are not ``sentinel-<n><unit letter>`` are returned lower-cased.
    """
    text = str(platform).strip().lower()
    match = re.fullmatch(r"(sentinel-\d+)[a-z]?", text)
    return match.group(1) if match else text


@dataclasses.dataclass(frozen=True)
class PairNetwork:
    """Scene pairs as a network: dates are nodes, pairs are edges.

    Attributes
    ----------
    table
        One row per pair: ``reference_index``, ``reference_time``,
        ``reference_sensor``, ``secondary_index``, ``secondary_time``,
        ``secondary_sensor``, ``dt_days`` (float days), ``sensor``, ``source``
        (position of the input cube in the list, 0 for a single cube). The indices
        are positions in the merged, time-sorted scene list (:attr:`scenes`).
    scenes
        The scenes used (after the ``sensors`` filter), sorted by time: ``time``,
        ``platform``, ``sensor``, ``relative_orbit`` (NaN if unknown), ``source``,
        ``source_index`` (position in its cube).
    dates
        Unique scene times, sorted (the nodes).
    edges
        ``(n_pairs, 2)`` int array: node indices (into :attr:`dates`) of each pair.
    component
        Connected-component id of each date (``scipy.sparse.csgraph.connected_components``).
    """

    table: pd.DataFrame
    scenes: pd.DataFrame
    dates: pd.DatetimeIndex
    edges: np.ndarray
    component: np.ndarray

    @property
    def n_components(self) -> int:
        """Number of connected components (a date in no pair is a component of its own)."""
        return int(self.component.max()) + 1 if self.component.size else 0

    @property
    def components(self) -> list[list[pd.Timestamp]]:
        """Dates of each connected component, components ordered by their first date."""
        return [list(self.dates[self.component == c]) for c in range(self.n_components)]

    def pair_coords(self) -> dict[str, tuple[str, np.ndarray]]:
        """Coordinates on ``pair`` (``date1``, ``date2``, ``dt_days``, ``sensor``) for a pair-velocity Dataset."""
        t = self.table
        return {"date1": (cv.PAIR, t["reference_time"].to_numpy("datetime64[ns]")),
                "date2": (cv.PAIR, t["secondary_time"].to_numpy("datetime64[ns]")),
                "dt_days": (cv.PAIR, t["dt_days"].to_numpy(np.float64)),
                "sensor": (cv.PAIR, t["sensor"].to_numpy(str))}

    def for_source(self, source: int = 0) -> pd.DataFrame:
        """The pairs of input cube ``source`` with ``reference``/``secondary`` = scene positions in that cube.

        Ready for :func:`cryocube.track_pairs` on that cube; the rows keep this
        network's order and columns.
        """
        rows = self.table[self.table["source"] == source]
        if rows.empty:
            raise ValueError(f"no pair comes from cube {source} (sources: {sorted(set(self.table['source']))})")
        position = self.scenes["source_index"].to_numpy()
        return rows.assign(reference=position[rows["reference_index"]], secondary=position[rows["secondary_index"]])

    def summary(self) -> str:
        """A few lines: pairs per sensor, separations, components."""
        t = self.table
        lines = [f"PairNetwork: {len(t)} pairs between {len(self.dates)} dates, {self.n_components} connected component(s)"]
        for sensor, group in t.groupby("sensor", sort=True):
            lines.append(f"  {sensor}: {len(group)} pairs, dt {group['dt_days'].min():g}-{group['dt_days'].max():g} days")
        for c, dates in enumerate(self.components):
            lines.append(f"  component {c}: {len(dates)} date(s), {dates[0]:%Y-%m-%d} .. {dates[-1]:%Y-%m-%d}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def _scene_table(cubes: Sequence[xr.Dataset]) -> pd.DataFrame:
    rows = []
    for source, cube in enumerate(cubes):
        if not isinstance(cube, xr.Dataset):
            raise TypeError(f"cube must be an xarray Dataset or a list of them, got {type(cube).__name__}")
        if cv.TIME not in cube.coords:
            raise ValueError(f"cube {source} has no {cv.TIME!r} coordinate")
        times = pd.DatetimeIndex(cube[cv.TIME].values)
        if "platform" in cube.coords:
            platforms = [str(p) for p in np.asarray(cube["platform"].values).reshape(-1)]
        else:
            platforms = ["unknown"] * len(times)
        if "relative_orbit" in cube.coords:
            orbits = np.asarray(cube["relative_orbit"].values, dtype=np.float64).reshape(-1)
        else:
            orbits = np.full(len(times), np.nan)
        rows.append(pd.DataFrame({"time": times, "platform": platforms,
                                  "sensor": [sensor_of(p) for p in platforms], "relative_orbit": orbits,
                                  "source": source, "source_index": np.arange(len(times))}))
    scenes = pd.concat(rows, ignore_index=True)
    return scenes.sort_values(["time", "source", "source_index"], kind="stable").reset_index(drop=True)


def make_pairs(cube: xr.Dataset | Sequence[xr.Dataset], *, min_days: float = 1.0, max_days: float = 48.0,
               sensors: Sequence[str] | None = None) -> PairNetwork:
    """All same-sensor scene pairs with ``min_days <= dt <= max_days``, as a network.

    Parameters
    ----------
    cube
        A ``(time, y, x)`` scene cube, or a list of cubes (e.g. Sentinel-1 and
        Sentinel-2) merged by time. Only the ``time`` coordinate and the per-scene
        ``platform`` coordinate are read (no pixel is loaded); the sensor of a scene
        is its platform without the unit letter (``sentinel-1a`` -> ``sentinel-1``),
        ``"unknown"`` without a ``platform`` coordinate.
    min_days, max_days
        Inclusive bounds on the separation ``dt = secondary - reference`` (days,
        fractional). Defaults: 1 day (excludes repeated acquisitions of the same
        day) and 48 days (eight Sentinel-1 12-day cycles of a single unit, ~10
        Sentinel-2 revisits): long enough to bridge gaps, short enough to keep
        features trackable.
    sensors
        Keep only scenes of these sensors (``"sentinel-1"``, ``"sentinel-2"`` or a
        platform name). Default: all.

    Returns
    -------
    PairNetwork
        Pairs sorted by reference then secondary time; a scene is always paired
        with a *later* scene of the same sensor (cross-sensor pairs are not made:
        offset tracking needs images of one sensor) and, for SAR
        (:data:`SAR_SENSORS`), of the same ``relative_orbit`` when the cube has it
        (speckle and geometry differ between orbits).

    Raises
    ------
    ValueError
        ``min_days``/``max_days`` not finite, negative or in the wrong order; a
        ``sensors`` value no scene has; no pair at all.
    """
    cubes = [cube] if isinstance(cube, xr.Dataset) else list(cube)
    if not cubes:
        raise ValueError("cube: an empty list was given; pass a cube or a list of cubes")
    min_days, max_days = float(min_days), float(max_days)
    if not (np.isfinite(min_days) and np.isfinite(max_days)) or min_days < 0 or max_days < min_days:
        raise ValueError(f"min_days={min_days} and max_days={max_days} must be finite with 0 <= min_days <= max_days")
    scenes = _scene_table(cubes)
    if sensors is not None:
        wanted = [str(s).lower() for s in ([sensors] if isinstance(sensors, str) else sensors)]
        known = set(scenes["sensor"]) | set(scenes["platform"].str.lower())
        unknown = [s for s in wanted if s not in known]
        if unknown:
            raise ValueError(f"sensors={list(wanted)}: no scene of {unknown}; the cube has sensors "
                             f"{sorted(set(scenes['sensor']))} (platforms {sorted(set(scenes['platform']))})")
        keep = scenes["sensor"].isin(wanted) | scenes["platform"].str.lower().isin(wanted)
        scenes = scenes[keep].reset_index(drop=True)

    t_days = (scenes["time"] - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    t_days = t_days.to_numpy(np.float64)
    sensor = scenes["sensor"].to_numpy()
    orbit = scenes["relative_orbit"].to_numpy()
    i, j = np.triu_indices(len(scenes), k=1)
    dt = t_days[j] - t_days[i]
    sar = np.isin(sensor[i], SAR_SENSORS)
    other_orbit = sar & np.isfinite(orbit[i]) & np.isfinite(orbit[j]) & (orbit[i] != orbit[j])
    keep = (sensor[i] == sensor[j]) & ~other_orbit & (dt >= min_days) & (dt <= max_days)
    i, j, dt = i[keep], j[keep], dt[keep]
    if i.size == 0:
        raise ValueError(f"no pair: no two scenes of one sensor are {min_days:g} to {max_days:g} days apart "
                         f"({len(scenes)} scene(s), sensors {sorted(set(sensor))}); widen min_days/max_days")
    table = pd.DataFrame({
        "reference_index": i, "reference_time": scenes["time"].to_numpy()[i], "reference_sensor": sensor[i],
        "secondary_index": j, "secondary_time": scenes["time"].to_numpy()[j], "secondary_sensor": sensor[j],
        "dt_days": dt, "sensor": sensor[i], "source": scenes["source"].to_numpy()[i],
    }).sort_values(["reference_time", "secondary_time", "reference_index", "secondary_index"],
                   kind="stable").reset_index(drop=True)
    dates = pd.DatetimeIndex(np.unique(scenes["time"].to_numpy()))
    edges = np.column_stack([dates.get_indexer(table["reference_time"]), dates.get_indexer(table["secondary_time"])])
    n = len(dates)
    adjacency = scipy.sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    _, labels = scipy.sparse.csgraph.connected_components(adjacency, directed=False)
    # Renumber components by their first date so that ids are stable and ordered.
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    component_map = np.empty(order.size, dtype=labels.dtype)
    component_map[order] = np.arange(order.size)
    component = component_map[labels]
    return PairNetwork(table=table, scenes=scenes, dates=dates, edges=edges, component=component)


# =========================================================================== network maths (numpy)
def pair_design(days1: np.ndarray, days2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Design matrix of the interval model.

    Parameters
    ----------
    days1, days2
        Float arrays ``(P,)``: start and end of each pair (days since any epoch),
        ``days2 > days1``.

    Returns
    -------
    nodes
        Sorted unique dates ``t_0..t_K`` (days), ``(K + 1,)``.
    design
        ``(P, K)``: ``overlap_k / (d2 - d1)`` (dimensionless, rows sum to 1).
    node1, node2
        ``(P,)`` int: node index of each pair's start and end.
    """
    days1, days2 = np.asarray(days1, np.float64), np.asarray(days2, np.float64)
    nodes = np.unique(np.concatenate([days1, days2]))
    start, end = nodes[:-1], nodes[1:]
    overlap = np.clip(np.minimum(end[None, :], days2[:, None]) - np.maximum(start[None, :], days1[:, None]), 0.0, None)
    design = overlap / (days2 - days1)[:, None]
    return nodes, design, np.searchsorted(nodes, days1), np.searchsorted(nodes, days2)


def component_labels(mask: np.ndarray, node1: np.ndarray, node2: np.ndarray, n_nodes: int) -> np.ndarray:
    """Connected components of each pixel's network, batched over pixels.

    Label propagation (each node takes the smallest label of its neighbours along
    the pixel's valid edges), sweeping the edges forwards and backwards until
    nothing changes; the label of a node is then the smallest node index of its
    component (so node 0 always has label 0). A Python loop over *edges*, each step
    vectorised over pixels.

    Parameters
    ----------
    mask
        ``(P, n)`` bool: edge ``p`` is present at pixel ``i``.
    node1, node2
        ``(P,)`` int end nodes of each edge.
    n_nodes
        Number of nodes.

    Returns
    -------
    ``(n_nodes, n)`` int32 labels.
    """
    n = mask.shape[1]
    labels = np.repeat(np.arange(n_nodes, dtype=np.int32)[:, None], n, axis=1)
    present = np.flatnonzero(mask.any(axis=1))
    order = present[np.lexsort((node2[present], node1[present]))]
    forward = True
    while True:
        before = labels.copy()
        for p in (order if forward else order[::-1]):
            a, b, m = labels[node1[p]], labels[node2[p]], mask[p]
            low = np.where(m, np.minimum(a, b), 0)
            np.copyto(a, low, where=m)
            np.copyto(b, low, where=m)
        if np.array_equal(before, labels):
            return labels
        forward = not forward


def _null_space_term(labels: np.ndarray) -> np.ndarray:
    """``M = Z Zᵀ`` (``(n, K, K)``) from component labels ``(n, K + 1)`` (see the module docstring)."""
    n, n_nodes = labels.shape
    onehot = (labels[:, :, None] == np.arange(1, n_nodes)[None, None, :]).astype(np.float64)  # components without node 0
    z = onehot[:, 1:, :] - onehot[:, :-1, :]
    return z @ z.transpose(0, 2, 1)


def _difference_penalty(nodes: np.ndarray, smoothing: float) -> np.ndarray:
    """``R = DᵀD`` of the first differences ``(v_{k+1} - v_k) / Δt_k(yr) ~ 0 ± smoothing``."""
    mid = 0.5 * (nodes[:-1] + nodes[1:]) / DAYS_PER_YEAR
    k = mid.size
    if k < 2:
        return np.zeros((k, k))
    d = np.zeros((k - 1, k))
    gap = np.diff(mid)
    d[np.arange(k - 1), np.arange(k - 1)] = -1.0 / (gap * smoothing)
    d[np.arange(k - 1), np.arange(1, k)] = 1.0 / (gap * smoothing)
    return d.T @ d


def band_width(design: np.ndarray) -> int:
    """Half bandwidth of the normal matrices ``AᵀWA``: the most intervals one pair spans, minus one.

    ``(AᵀWA)[a, b] = 0`` unless a pair covers both intervals ``a`` and ``b``, and a
    pair covers a contiguous run of intervals, so ``|a - b| <= band_width(A)``.
    """
    covered = design > 0
    first = covered.argmax(axis=1)
    last = covered.shape[1] - 1 - covered[:, ::-1].argmax(axis=1)
    return int((last - first).max(initial=0))


def _masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median over axis 0 of the masked-in values (``(P, n)``); NaN where nothing is masked in."""
    # sorted pixel-major: a contiguous row per pixel sorts several times faster than a strided column
    ordered = np.ascontiguousarray(np.where(mask, values, np.nan).T)
    ordered.sort(axis=1)  # NaN sort last
    count = mask.sum(axis=0)
    lo = np.maximum((count - 1) // 2, 0)
    hi = np.maximum(count // 2, 0)
    rows = np.arange(ordered.shape[0])
    return np.where(count > 0, 0.5 * (ordered[rows, lo] + ordered[rows, hi]), np.nan)


def invert_pairs_kernel(vx: np.ndarray, vy: np.ndarray, vx_error: np.ndarray | None = None,
                        vy_error: np.ndarray | None = None, *, days1: np.ndarray, days2: np.ndarray,
                        method: str = "connected-components", outlier_mad: float | None = 3.0,
                        min_pairs: int = 1, smoothing: float | None = None,
                        max_iterations: int = MAX_ITERATIONS,
                        batch_pixels: int = BATCH_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """Invert pair velocities into interval velocities, batched over pixels (pure numpy).

    Per pixel: weighted least squares ``A x ≈ y`` with weights ``1 / error**2``
    (1 without errors) over the valid pairs (finite velocity, finite positive
    error), solved exactly as in the module docstring (``(AᵀWA + ZZᵀ)⁻¹``; with
    ``method="regularized"`` ``(AᵀWA + R)⁻¹`` instead, ``R`` the first-difference
    penalty). Robust step (``outlier_mad`` not None), only for pixels where a
    pair fails the test below after the plain fit:

    1. ``IRLS_ITERATIONS`` Cauchy-weighted refits (weights ``1 / (1 + (u/2.385)**2)``,
       no pair dropped, so the network stays whole; solve only and plain
       residuals, the leverage only in the first and the final tests) keep gross
       errors from smearing into their neighbours' residuals;
    2. a pair is an inlier iff ``u <= outlier_mad`` for vx and vy, with
       ``u = |z - median(z)| / max(1.4826 * MAD(z), 1)``, ``z = t / error`` the
       residual in units of the pair's own 1-sigma error (Baarda's w-test; without
       errors ``z = t`` and the floor is ``1e-9 * (1 + max|y|)``) and ``t`` the
       studentized residual: ``r / sqrt(1 - h)`` for a pair in the fit (``h`` its
       leverage; without it a short, precise pair that alone fixes an interval
       hides its gross error in a small residual), ``r / sqrt(1 + h)`` for a pair
       left out (the fit's own uncertainty at that pair); median and MAD over the
       current inliers. A pair is thus never rejected within ``outlier_mad`` times
       its reported error, and the MAD only widens the test where the errors are
       underestimated: a scale pooled over pairs of different errors would let a
       precise pair's gross error pass and reject the imprecise good pairs it
       drags along instead;
    3. plain refit on the inliers, re-testing every valid pair (rejected pairs can
       come back, except those whose two dates fell into different components,
       which nothing can test any more), at most ``max_iterations`` times, only
       for pixels whose inlier set changed.

    Matrices are built for ``batch_pixels`` pixels at a time, pixel axis last
    (normal matrices from sparse outer products of the design rows, banded
    factorisation, see the module docstring); nothing loops over pixels in
    Python, and a pixel's result does not depend on the others in its batch.

    Parameters
    ----------
    vx, vy
        ``(..., P)`` pair velocities (m/yr), the pair axis last.
    vx_error, vy_error
        ``(..., P)`` 1-sigma errors (m/yr), both or neither. Without errors all
        pairs weigh the same and the output errors are scaled by the a-posteriori
        residual standard deviation (NaN without redundancy).
    days1, days2
        ``(P,)`` pair start and end (days, any epoch), ``days2 > days1``.
    method, outlier_mad, min_pairs, smoothing
        As in :func:`invert_velocity`.

    Returns
    -------
    values
        ``(..., 4, K)`` float32: vx, vy, vx_error, vy_error (m/yr) per interval.
    counts
        ``(..., 3)`` int32: pairs used, connected components of the valid network,
        pairs rejected as outliers.
    """
    lead = vx.shape[:-1]
    n_pairs = vx.shape[-1]
    nodes, design, node1, node2 = pair_design(days1, days2)
    k = design.shape[1]
    has_errors = vx_error is not None
    # Sparse outer products of the design rows: N_flat = W @ S, S[p, a*K+b] = A[p,a] A[p,b].
    outer = scipy.sparse.csr_matrix((design[:, :, None] * design[:, None, :]).reshape(n_pairs, k * k))
    outer_t = outer.T.tocsr()
    penalty = _difference_penalty(nodes, smoothing) if method == "regularized" else None
    arrays = [np.asarray(a).reshape(-1, n_pairs) for a in ((vx, vy, vx_error, vy_error) if has_errors else (vx, vy))]
    n = arrays[0].shape[0]
    values = np.full((n, 4, k), np.nan, dtype=np.float32)
    counts = np.zeros((n, 3), dtype=np.int32)
    for s in range(0, n, batch_pixels):
        block = [a[s:s + batch_pixels].T.astype(np.float64) for a in arrays]  # (P, nb), pair-major
        values[s:s + batch_pixels], counts[s:s + batch_pixels] = _invert_batch(
            block, design=design, outer_t=outer_t, node1=node1, node2=node2, penalty=penalty,
            outlier_mad=outlier_mad, min_pairs=min_pairs, max_iterations=max_iterations)
    return values.reshape(*lead, 4, k), counts.reshape(*lead, 3)


class _Solver:
    """Normal equations of one batch of pixels (pair-major arrays ``(P, n)``), solved for chosen pixels.

    Normal matrices are built pixel-last, ``(K, K, na)``, from the sparse outer
    products of the design rows (``outer_t @ w``, no transpose) and factored in
    band storage (:mod:`cryocube.banded`); the few pixels whose network is split (connected
    components: the null-space term ``M`` is not banded) or whose band factor
    fails fall back to LAPACK's ``np.linalg.inv`` of ``N + M`` (regularized: of
    ``N + R``, plus ``1 1ᵀ`` for a pixel without any pair).
    """

    def __init__(self, y: np.ndarray, weight: np.ndarray, scale: np.ndarray, same_weights: bool, *,
                 design: np.ndarray, outer_t: scipy.sparse.csr_matrix, node1: np.ndarray, node2: np.ndarray,
                 penalty: np.ndarray | None) -> None:
        self.y, self.weight, self.scale, self.same_weights = y, weight, scale, same_weights
        self.design, self.outer_t, self.node1, self.node2, self.penalty = design, outer_t, node1, node2, penalty
        self.outer = outer_t.T.tocsr()
        self.design_sparse = scipy.sparse.csr_matrix(design)
        self.design_t = self.design_sparse.T.tocsr()
        self.k = design.shape[1]
        self.band = max(band_width(design), 0 if penalty is None else 1)
        self.full_labels = component_labels(np.ones((design.shape[0], 1), bool), node1, node2, self.k + 1)[:, 0]

    def labels(self, mask: np.ndarray) -> np.ndarray:
        """Component labels ``(K + 1, na)``; pixels with every pair present reuse the full network's."""
        out = np.empty((self.k + 1, mask.shape[1]), dtype=np.int32)
        full = mask.all(axis=0)
        out[:, full] = self.full_labels[:, None]
        if not full.all():
            out[:, ~full] = component_labels(mask[:, ~full], self.node1, self.node2, self.k + 1)
        return out

    def fitted(self, x: np.ndarray) -> np.ndarray:
        """``A x`` for ``x`` ``(2, K, na)``: ``(2, P, na)``."""
        return np.stack([self.design_sparse @ x[c] for c in range(2)])

    def _normal(self, w: np.ndarray, c: int, idx: np.ndarray) -> np.ndarray:
        """``AᵀWA`` (plus the scaled penalty) ``(K, K, na)`` for weights ``w`` ``(P, na)`` of pixels ``idx``."""
        normal = (self.outer_t @ w).reshape(self.k, self.k, -1)
        if self.penalty is not None:
            normal += self.penalty[:, :, None] / self.scale[c, idx]  # same units as the normalised N
        return normal

    def solve(self, idx: np.ndarray, mask: np.ndarray, labels: np.ndarray, robust: np.ndarray | None = None,
              full: bool = True) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Least squares for pixels ``idx`` with pairs ``mask`` (``(P, na)``) and optional robust weight factors.

        Returns ``x`` ``(2, K, na)``, ``diag((N + M)⁻¹)`` in (m/yr)² ``(2, K, na)`` and
        the signed leverages ``(2, P, na)``: ``h_p = q_p`` for pairs in ``mask``,
        ``-q_p`` for the other valid pairs, with ``q_p = w_p a_pᵀ (N + M)⁻¹ a_p``
        (``a_pᵀ M⁺ a_p = 0``: exact), so that ``1 - h_p`` is the variance of the
        pair's residual in units of its own (``σ_p² (1 - q_p)`` for a pair in the
        fit, ``σ_p² (1 + q_p)`` for one left out). ``full=False`` (the robust
        reweighting steps): no variances, no leverages (None).
        """
        k, na = self.k, idx.size
        if self.penalty is None:
            split = (labels[1:] != labels[:-1]).any(axis=0)
        else:  # a pixel without pairs: N = R alone is singular (the constants are its null space)
            split = ~mask.any(axis=0)
        x = np.empty((2, k, na))
        var = np.empty((2, k, na)) if full else None
        leverage = np.zeros((2, self.design.shape[0], na)) if full else None
        for c in range(1 if self.same_weights else 2):
            w = np.where(mask, self.weight[c][:, idx], 0.0)
            if robust is not None:
                w = w * robust
            components = (0, 1) if self.same_weights else (c,)
            # sparse products, not BLAS gemm: a pixel's sums must not depend on how many pixels share the call
            rhs = np.stack([self.design_t @ (w * self.y[cc][:, idx]) for cc in components], axis=1)  # (K, nc, na)
            normal = self._normal(w, c, idx)
            factor, zero = band_cholesky(to_band(normal, self.band))
            dense = np.flatnonzero(zero.any(axis=0) | split)
            sol = band_solve(factor, zero, rhs)
            inv = to_dense(band_inverse(factor, zero)) if full else None
            if dense.size:
                normal = normal[:, :, dense].transpose(2, 0, 1)
                if self.penalty is None:
                    normal = normal + _null_space_term(labels[:, dense].T)
                else:  # + 1 1ᵀ, orthogonal to the range of R: reported as NaN anyway (no pair)
                    normal = normal + split[dense, None, None]
                dense_rhs = rhs[:, :, dense].transpose(2, 0, 1)
                if full:
                    dense_inv = np.linalg.inv(normal)
                    sol[:, :, dense] = (dense_inv @ dense_rhs).transpose(1, 2, 0)
                    inv[:, :, dense] = dense_inv.transpose(1, 2, 0)
                else:
                    sol[:, :, dense] = np.linalg.solve(normal, dense_rhs).transpose(1, 2, 0)
            if full:
                q = self.weight[c][:, idx] * (self.outer @ inv.reshape(k * k, na))  # sparse (P, K²) @ (K², na)
                q = np.where(mask, q, -q)
            for j, cc in enumerate(components):
                x[cc] = sol[:, j]
                if full:
                    var[cc] = inv[np.arange(k), np.arange(k)] / self.scale[cc, idx]
                    leverage[cc] = q
        return x, var, leverage


def _normalised_residuals(solver: _Solver, idx: np.ndarray, x: np.ndarray, leverage: np.ndarray | None,
                          mask: np.ndarray, unit: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Robustly normalised residuals (Baarda's w-test with a robust variance factor), ``(P, na)``.

    ``t = r / sqrt(1 - h)`` with the signed leverage ``h`` of :meth:`_Solver.solve`
    (``t = 0`` where ``1 - h ≈ 0``, a pair nothing else checks; ``t = r`` without
    leverages, in the robust reweighting steps), in units of the
    pair's own error, ``z = t / unit``; then the maximum over vx, vy of
    ``|z - median(z)| / max(1.4826 MAD(z), floor)`` with median and MAD over
    ``mask``. Every pair is measured against its own error (a robust scale pooled
    over pairs of different errors would under-weigh a precise pair's gross error
    against the imprecise neighbours it drags along, and reject those instead);
    the MAD only inflates the scale when the errors are underestimated.
    """
    resid = solver.y[:, :, idx] - solver.fitted(x)
    if leverage is not None:
        redundancy = 1.0 - leverage
        checked = redundancy > 1e-6
        np.sqrt(redundancy, out=redundancy, where=checked)
        np.divide(resid, redundancy, out=resid, where=checked)
        resid[~checked] = 0.0
    u = np.zeros(mask.shape)
    for c in range(2):
        z = resid[c] / unit[c][:, idx]
        med = _masked_median(z, mask)
        spread = np.abs(z - med)
        mad = _masked_median(spread, mask)
        u = np.maximum(u, spread / np.maximum(MAD_TO_SIGMA * mad, floor[c][:, idx]))
    return u


def _invert_batch(block: list[np.ndarray], *, design: np.ndarray, outer_t: scipy.sparse.csr_matrix,
                  node1: np.ndarray, node2: np.ndarray, penalty: np.ndarray | None,
                  outlier_mad: float | None, min_pairs: int, max_iterations: int) -> tuple[np.ndarray, np.ndarray]:
    n_pairs, k = design.shape
    y = np.stack(block[:2])  # (2, P, n)
    n = y.shape[2]
    valid = np.isfinite(y).all(axis=0)
    if len(block) == 4:
        sigma = np.stack(block[2:])
        valid &= (np.isfinite(sigma) & (sigma > 0)).all(axis=0)
        sigma = np.where(valid, sigma, 1.0)
    else:
        sigma = None
    y = np.where(valid, y, 0.0)
    weight = np.ones_like(y) if sigma is None else 1.0 / sigma**2
    scale = np.max(np.where(valid, weight, 0.0), axis=1)  # (2, n): normalise the weights per pixel
    scale[scale == 0] = 1.0
    weight = np.where(valid, weight / scale[:, None, :], 0.0)
    # vx and vy share one factorisation when their normalised weights agree (errors proportional per pixel,
    # to float32 precision: the relative weight difference is then < 1e-6, far below any error's precision)
    same_weights = sigma is None or bool(np.allclose(weight[0], weight[1], rtol=1e-6, atol=0))
    # residuals in units of each pair's error; without errors, of the residual scale (floored against 0)
    if sigma is None:
        unit = np.ones_like(y)
        floor = 1e-9 * (1.0 + np.max(np.abs(y), axis=1, keepdims=True))  # (2, 1, n)
    else:
        unit = sigma
        floor = np.ones((2, 1, n))
    solver = _Solver(y, weight, scale, same_weights, design=design, outer_t=outer_t, node1=node1, node2=node2,
                     penalty=penalty)

    everything = np.arange(n)
    labels = solver.labels(valid)
    x, var, leverage = solver.solve(everything, valid, labels)
    inliers = valid.copy()
    if outlier_mad is not None and max_iterations > 0:
        u = _normalised_residuals(solver, everything, x, leverage, valid, unit, floor)
        active = np.flatnonzero((valid & (u > outlier_mad)).any(axis=0))
        if active.size:
            # Robust start: Cauchy-weighted refits (no pair dropped, so the network stays whole and every
            # residual stays defined) keep gross errors from smearing into their neighbours' residuals.
            mask = valid[:, active]
            lab = labels[:, active]
            u_a = u[:, active]
            for _ in range(IRLS_ITERATIONS):
                # floored: weights of ~1e-16 made the normal matrix numerically singular (found by a property test)
                robust = np.maximum(1.0 / (1.0 + (u_a / CAUCHY_C) ** 2), ROBUST_WEIGHT_FLOOR)
                x_a, _, lev = solver.solve(active, mask, lab, robust=robust, full=False)
                u_a = _normalised_residuals(solver, active, x_a, lev, mask, unit, floor)
            # Hard rejection and plain refits, re-testing every valid pair against the new fit.
            for _ in range(max_iterations):
                new = mask & (u_a <= outlier_mad)
                changed = (new != inliers[:, active]).any(axis=0)
                if not changed.any():
                    break
                active, new, mask, u_a = active[changed], new[:, changed], mask[:, changed], u_a[:, changed]
                inliers[:, active] = new
                labels[:, active] = lab = solver.labels(new)
                x[:, :, active], var[:, :, active], lev = solver.solve(active, new, lab)
                u_a = _normalised_residuals(solver, active, x[:, :, active], lev, new, unit, floor)
                # a pair whose ends fell into different components cannot be re-tested: it stays out
                undetermined = lab[node1] != lab[node2]
                u_a = np.where(undetermined, np.inf, u_a)

    # ---- which intervals are reported
    used = inliers.sum(axis=0)
    coverage = (inliers.T.astype(np.float64) @ (design > 0)).T  # (K, n)
    if penalty is not None:
        ok = np.broadcast_to(used >= max(min_pairs, 1), (k, n))
    else:
        ok = (labels[1:] == labels[:-1]) & (coverage >= min_pairs)
    rank = k - (_count_distinct(labels) - 1)
    dof = used - rank
    if sigma is None:  # a-posteriori variance factor from the residuals
        fitted = solver.fitted(np.nan_to_num(x))
        ss = (np.where(inliers, y - fitted, 0.0) ** 2).sum(axis=1)  # (2, n)
        factor = np.where(dof > 0, ss / np.maximum(dof, 1), np.nan)
        var = var * factor[:, None, :]
    out = np.full((n, 4, k), np.nan, dtype=np.float32)
    out[:, 0:2] = np.where(ok[None], x, np.nan).transpose(2, 0, 1)
    out[:, 2:4] = np.where(ok[None], np.sqrt(np.maximum(var, 0.0)), np.nan).transpose(2, 0, 1)
    touched = np.zeros((k + 1, n), dtype=bool)
    np.logical_or.at(touched, node2, inliers)
    np.logical_or.at(touched, node1, inliers)
    roots = touched & (labels == np.arange(k + 1, dtype=np.int32)[:, None])
    counts = np.stack([used, roots.sum(axis=0), valid.sum(axis=0) - used], axis=1).astype(np.int32)
    return out, counts


def _count_distinct(labels: np.ndarray) -> np.ndarray:
    """Number of distinct labels per column of ``(n_nodes, n)`` min-labels (= nodes that are their own label)."""
    return (labels == np.arange(labels.shape[0], dtype=labels.dtype)[:, None]).sum(axis=0)


# =========================================================================== xarray wrapper
def pair_days(pair_velocities: xr.Dataset) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex, pd.DatetimeIndex]:
    for name in ("date1", "date2"):
        if name not in pair_velocities.coords and name not in pair_velocities.data_vars:
            raise ValueError(f"pair_velocities has no {name!r} coordinate on {cv.PAIR!r}: give each pair its "
                             "reference (date1) and secondary (date2) datetime64 dates")
        if pair_velocities[name].dims != (cv.PAIR,):
            raise ValueError(f"{name!r} must be a 1-D coordinate on {cv.PAIR!r}, got dims {pair_velocities[name].dims}")
    try:
        d1 = pd.DatetimeIndex(np.asarray(pair_velocities["date1"].values))
        d2 = pd.DatetimeIndex(np.asarray(pair_velocities["date2"].values))
    except (TypeError, ValueError) as err:
        raise ValueError(f"date1/date2 must be datetime64 dates: {err}") from err
    if d1.tz is not None:
        d1 = d1.tz_convert("UTC").tz_localize(None)
    if d2.tz is not None:
        d2 = d2.tz_convert("UTC").tz_localize(None)
    if d1.isna().any() or d2.isna().any():
        bad = np.flatnonzero(d1.isna() | d2.isna())
        raise ValueError(f"date1/date2 are missing (NaT) for pair(s) {bad[:10].tolist()}")
    epoch = pd.Timestamp("1970-01-01")
    days1 = ((d1 - epoch) / pd.Timedelta(days=1)).to_numpy(np.float64)
    days2 = ((d2 - epoch) / pd.Timedelta(days=1)).to_numpy(np.float64)
    bad = np.flatnonzero(days2 <= days1)
    if bad.size:
        p = int(bad[0])
        raise ValueError(f"date2 must follow date1 for every pair; {bad.size} pair(s) do not, e.g. pair {p}: "
                         f"date1={d1[p]}, date2={d2[p]}")
    return days1, days2, d1, d2


def snap_days(days1: np.ndarray, days2: np.ndarray, step_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Pair dates (days) rounded to a grid of ``step_days`` anchored at the first date.

    Scenes of several sensors or orbits acquired within half a step of each other
    then share one node of the network, so that their pairs connect.
    """
    origin = float(min(days1.min(), days2.min()))
    return (origin + np.round((days1 - origin) / step_days) * step_days,
            origin + np.round((days2 - origin) / step_days) * step_days)


def invert_velocity(pair_velocities: xr.Dataset, *, method: str = "connected-components",
                    outlier_mad: float | None = 3.0, min_pairs: int = 1,
                    smoothing: float | None = None, time_step_days: float | None = None) -> xr.Dataset:
    """Velocity time series from a network of pair velocities (Li, Mao et al. 2023).

    Per pixel, the mean velocity over each interval between consecutive unique
    dates of the pairs is estimated by weighted least squares (weights
    ``1 / error**2``) after removing gross errors (robust refits: a pair whose
    residual exceeds ``outlier_mad * 1.4826 * MAD`` of the residuals is dropped,
    its own error being a floor, see :func:`invert_pairs_kernel`). The solve is the
    least-squares solution within every connected component of the pixel's
    remaining network; an interval that no remaining pair determines (the two
    dates bounding it are in different components, e.g. it is only ever covered by
    a pair that also spans a neighbouring interval) is NaN, never invented.

    Lazy: ``xr.apply_ufunc(..., dask="parallelized")`` over the spatial chunks with
    ``pair`` as the core dimension. The ``pair`` axis must be one chunk: a
    dask-backed input chunked along ``pair`` is rechunked to the whole ``pair``
    axis and ~64 MiB spatial tiles (:func:`cryocube.chunking.core_chunked`); input
    already whole along ``pair`` keeps its chunks, with a ``ChunkSizeWarning``
    when one task would hold more than 1 GiB of one variable.

    Parameters
    ----------
    pair_velocities
        Dataset with dims ``(pair, ...)`` (typically ``(pair, y, x)``): ``vx``,
        ``vy`` (m/yr), optionally ``vx_error``, ``vy_error`` (1-sigma, m/yr; both
        or neither), coordinates ``date1``, ``date2`` (datetime64) on ``pair``.
        Each pair's velocity is its mean velocity from ``date1`` to ``date2``. NaN
        marks a missing measurement. The dates define the output time axis, so
        they are read at call time (computed if they are dask-backed, as after
        ``Dataset.chunk``; keep them in memory to stay fully lazy).
    method
        ``"connected-components"`` (default): exact least squares per component,
        NaN where undetermined. ``"regularized"``: adds the Tikhonov first-order
        smoothing pseudo-observations ``(v_{k+1} - v_k) / Δt_k = 0 ± smoothing``
        (``Δt_k`` between interval midpoints, years), which fills every interval
        of a pixel with at least ``min_pairs`` pairs — it *invents continuity*
        across gaps that no pair measures (and biases fast changes); its errors are
        the posterior standard deviations of that prior.
    outlier_mad
        Rejection threshold in robust standard deviations (1.4826 * MAD); None
        disables the robust step.
    min_pairs
        ``"connected-components"``: an interval is reported only if at least this
        many remaining pairs cover it. ``"regularized"``: a pixel needs at least
        this many remaining pairs.
    smoothing
        ``"regularized"`` only (required there): 1-sigma of the acceleration
        between consecutive intervals, m/yr per year, relative to the pairs'
        errors (without ``vx_error``/``vy_error`` every pair counts as a 1 m/yr
        error). Smaller is smoother.
    time_step_days
        Snap the pair dates to a grid of this step (days, from the first date;
        :func:`snap_days`) before building the network. Use it to combine sensors
        or orbits whose acquisitions never coincide (Sentinel-1 ascending and
        descending passes hours apart, Sentinel-2 on other days): without it their
        dates are separate nodes, and the intervals between nodes of different
        sub-networks are undetermined. Each pair still counts as the mean over its
        snapped interval (an approximation within half a step at each end); pairs
        whose dates snap together are left out (``n_input_pairs`` counts the rest).

    Returns
    -------
    xr.Dataset
        Dims ``(time, ...)``: float32 ``vx``, ``vy``, ``v``, ``vx_error``,
        ``vy_error`` (m/yr); ``time`` = interval midpoints with coordinates
        ``time_start``, ``time_end``; per pixel int32 ``n_pairs`` (pairs used after
        outlier removal), ``n_components`` (connected components of the pixel's
        remaining network, dates in no pair not counted), ``n_rejected``. Attrs:
        the parameters and ``cryocube_version``.

    Raises
    ------
    ValueError
        Missing ``vx``/``vy``/``pair``/``date1``/``date2``, ``date2 <= date1``, no
        pair, one error variable without the other, a bad ``method``,
        ``outlier_mad``, ``min_pairs`` or ``smoothing``.
    """
    if not isinstance(pair_velocities, xr.Dataset):
        raise TypeError(f"pair_velocities must be an xarray Dataset, got {type(pair_velocities).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if outlier_mad is not None and not (np.isfinite(outlier_mad) and outlier_mad > 0):
        raise ValueError(f"outlier_mad must be a positive number or None, got {outlier_mad!r}")
    if int(min_pairs) != min_pairs or min_pairs < 1:
        raise ValueError(f"min_pairs must be an integer >= 1, got {min_pairs!r}")
    if method == "regularized":
        if smoothing is None or not (np.isfinite(smoothing) and smoothing > 0):
            raise ValueError(f"method='regularized' needs smoothing > 0 (m/yr per year), got {smoothing!r}")
    elif smoothing is not None:
        raise ValueError(f"smoothing={smoothing!r} is only used by method='regularized'")
    for name in ("vx", "vy"):
        if name not in pair_velocities.data_vars:
            raise ValueError(f"pair_velocities has no variable {name!r}; it has {sorted(map(str, pair_velocities.data_vars))}")
    has = [name in pair_velocities.data_vars for name in ("vx_error", "vy_error")]
    if any(has) and not all(has):
        raise ValueError("pair_velocities has only one of 'vx_error'/'vy_error': give both or neither")
    if cv.PAIR not in pair_velocities.dims or pair_velocities.sizes[cv.PAIR] == 0:
        raise ValueError(f"pair_velocities has no pairs (dimension {cv.PAIR!r} missing or empty)")
    days1, days2, d1, d2 = pair_days(pair_velocities)
    if time_step_days is not None:
        if not (np.isfinite(time_step_days) and time_step_days > 0):
            raise ValueError(f"time_step_days must be a positive number of days, got {time_step_days!r}")
        days1, days2 = snap_days(days1, days2, float(time_step_days))
        keep = days2 > days1
        if not keep.any():
            raise ValueError(f"time_step_days={time_step_days}: every pair is shorter than half a step; use a smaller step")
        pair_velocities = pair_velocities.isel({cv.PAIR: np.flatnonzero(keep)})
        days1, days2 = days1[keep], days2[keep]
    names = ["vx", "vy", "vx_error", "vy_error"] if all(has) else ["vx", "vy"]
    inputs = [pair_velocities[name] for name in names]
    dims = inputs[0].dims
    for var in inputs:
        if cv.PAIR not in var.dims:
            raise ValueError(f"variable {var.name!r} has dims {var.dims}: it needs the {cv.PAIR!r} dimension")
    inputs = [core_chunked(var, cv.PAIR, "invert_velocity") for var in inputs]
    inputs = [var.drop_vars([c for c in var.coords if cv.PAIR in var[c].dims]) for var in inputs]

    nodes, _, _, _ = pair_design(days1, days2)
    k = nodes.size - 1
    kwargs = dict(days1=days1, days2=days2, method=method, outlier_mad=outlier_mad, min_pairs=int(min_pairs),
                  smoothing=smoothing)
    values, counts = xr.apply_ufunc(
        invert_pairs_kernel, *inputs, kwargs=kwargs,
        input_core_dims=[[cv.PAIR]] * len(inputs),
        output_core_dims=[["variable", cv.TIME], ["count"]],
        dask="parallelized", output_dtypes=[np.float32, np.int32],
        dask_gufunc_kwargs={"output_sizes": {"variable": 4, cv.TIME: k, "count": 3}},
    )
    epoch = np.datetime64("1970-01-01T00:00:00", "ns")
    to_time = lambda d: epoch + np.round(np.asarray(d) * 86400e9).astype("timedelta64[ns]")  # noqa: E731
    start, end = to_time(nodes[:-1]), to_time(nodes[1:])
    mid = start + (end - start) // 2
    other = [d for d in dims if d != cv.PAIR]
    out = xr.Dataset()
    for i, name in enumerate(("vx", "vy", "vx_error", "vy_error")):
        out[name] = values.isel(variable=i, drop=True).transpose(cv.TIME, *other)
    vx, vy = out["vx"], out["vy"]
    out["v"] = np.hypot(vx, vy).astype(np.float32)
    for name in ("vx", "vy", "v", "vx_error", "vy_error"):
        out[name].attrs = dict(_VARIABLE_ATTRS[name])
    for i, (name, long_name) in enumerate((("n_pairs", "pairs used after outlier removal"),
                                           ("n_components", "connected components of the pixel's pair network"),
                                           ("n_rejected", "pairs rejected as gross errors"))):
        out[name] = counts.isel(count=i, drop=True).transpose(*other)
        out[name].attrs = {"units": "1", "long_name": long_name}
    out = out[["vx", "vy", "v", "vx_error", "vy_error", "n_pairs", "n_components", "n_rejected"]]
    out = out.assign_coords({cv.TIME: (cv.TIME, mid), "time_start": (cv.TIME, start), "time_end": (cv.TIME, end)})
    out.attrs = {k_: v_ for k_, v_ in pair_velocities.attrs.items() if k_ not in ("reference_time", "secondary_time")}
    out.attrs.update({"method": method, "outlier_mad": "none" if outlier_mad is None else float(outlier_mad),
                      "min_pairs": int(min_pairs), "n_input_pairs": int(days1.size),
                      "reference": "Li, Mao et al. 2023, IJAEOG 121:103378",
                      cv.ATTR_VERSION: cryocube.__version__})
    if smoothing is not None:
        out.attrs["smoothing_m_per_yr_per_yr"] = float(smoothing)
    if time_step_days is not None:
        out.attrs["time_step_days"] = float(time_step_days)
    if "spatial_ref" in pair_velocities.coords:
        out = out.assign_coords(spatial_ref=pair_velocities["spatial_ref"])
    return out
