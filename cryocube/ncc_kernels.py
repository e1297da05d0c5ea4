"""Correlation surfaces of a regular grid of chips, sharing the products of overlapping chips (compiled kernel).

Offset tracking on a grid matches chips that overlap: with chips of 32 px every
8 px, every pixel lies in 16 chips, and a per-chip matcher (OpenCV
``matchTemplate``) multiplies it with the secondary image 16 times for every
searched offset. Here the chip is cut into square *cells* of ``cell`` px
(``cell = gcd(chip, step)``), aligned with the grid, and for every offset
``d = (dr, dc)`` the products ``sum_cell r(u) s(u + d)`` are computed once per
cell and then summed over the ``(chip / cell)^2`` cells of each chip:

    NCC(p, d) = (sum_chip r s_d - R_p mean(s_d)) / (sqrt(sum_chip r^2 - R_p^2 / N) std(s_d) sqrt(N))

with ``R_p = sum_chip r`` and the mean and standard deviation of the secondary
window ``s_d`` taken from box sums computed once per image. This is exactly
OpenCV's ``TM_CCOEFF_NORMED`` (the same formula, evaluated in float64 instead of
OpenCV's float32 DFT: the two differ by < 1e-7), at a fraction of the cost.

Points are processed in square groups of :data:`GROUP_POINTS` x ``GROUP_POINTS``
grid points; a group searches the union of its points' search windows (they
differ by the priors), so a group whose priors spread more than
:data:`MAX_GROUP_SPREAD` surface widths is processed point by point. Every sum
runs in a fixed order over cells aligned with the grid, so a point's surface does
not depend on the group it falls in, nor on where the image (a dask block)
starts: results are identical for any chunking.

Windows whose secondary standard deviation is below ``1e-9`` of their RMS (flat
windows) get NCC 0, as in OpenCV.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: Edge (grid points) of the square groups of points whose cell products are shared.
GROUP_POINTS = 32
#: A group whose union of search windows is larger than this many surfaces along an axis is done point by point.
MAX_GROUP_SPREAD = 2
#: Smallest cell edge (px) for which the shared products beat a per-chip matcher.
MIN_CELL_PX = 4


def cell_px(chip_px: int, step_px: int) -> int:
    """Edge (px) of the cells shared by the chips of a grid: ``gcd(chip_px, step_px)``."""
    return math.gcd(int(chip_px), int(step_px))


@numba.njit(cache=True, nogil=True)
def _accumulate(total: np.ndarray, values: np.ndarray) -> None:
    """``total += values[:len(total)]`` (one vectorised loop)."""
    for x in range(total.size):
        total[x] += values[x]


@numba.njit(cache=True, nogil=True)
def window_statistics(image: np.ndarray, chip: int, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and inverse standard deviation of every ``chip x chip`` window of ``image``, by its top-left pixel.

    Sums run over ``cell``-px strips in a fixed order (no running sums), so a
    window's values do not depend on where ``image`` starts. Returns two float64
    arrays of shape ``(H - chip + 1, W - chip + 1)``; the inverse standard
    deviation is 0 for flat windows.
    """
    height, width = image.shape
    m = chip // cell
    n = float(chip * chip)
    strip1 = np.zeros((height - cell + 1, width))  # sums over cell rows, per column
    strip2 = np.zeros((height - cell + 1, width))
    for y in range(height - cell + 1):
        for i in range(cell):
            row = image[y + i]
            for x in range(width):
                v = np.float64(row[x])
                strip1[y, x] += v
                strip2[y, x] += v * v
    out_width = width - chip + 1
    mean = np.empty((height - chip + 1, out_width))
    inv_std = np.empty((height - chip + 1, out_width))
    column1, column2 = np.empty(width), np.empty(width)  # sums over chip rows
    part1, part2 = np.empty(width - cell + 1), np.empty(width - cell + 1)  # ... and cell columns
    total1, total2 = np.empty(out_width), np.empty(out_width)  # ... and chip columns
    for y in range(height - chip + 1):
        column1[:] = 0.0
        column2[:] = 0.0
        for k in range(m):
            _accumulate(column1, strip1[y + k * cell])
            _accumulate(column2, strip2[y + k * cell])
        part1[:] = 0.0
        part2[:] = 0.0
        for j in range(cell):
            _accumulate(part1, column1[j:])
            _accumulate(part2, column2[j:])
        total1[:] = 0.0
        total2[:] = 0.0
        for k in range(m):
            _accumulate(total1, part1[k * cell :])
            _accumulate(total2, part2[k * cell :])
        for x in range(out_width):
            variance = total2[x] - total1[x] * total1[x] / n
            mean[y, x] = total1[x] / n
            inv_std[y, x] = 1.0 / math.sqrt(variance) if variance > 1e-9 * total2[x] else 0.0
    return mean, inv_std


@numba.njit(cache=True, nogil=True)
def _search_union(prior_r: np.ndarray, prior_c: np.ndarray, fast: np.ndarray, i0: int, i1: int, j0: int, j1: int,
                  search: int) -> tuple[int, int, int, int]:
    """Offsets ``(dr_lo, dr_hi, dc_lo, dc_hi)`` (px) searched by some fast point of the group; ``dr_lo > dr_hi`` if none."""
    big = 1 << 30
    dr_lo, dr_hi, dc_lo, dc_hi = big, -big, big, -big
    for i in range(i0, i1):
        for j in range(j0, j1):
            if fast[i, j]:
                dr_lo = min(dr_lo, prior_r[i, j] - search)
                dr_hi = max(dr_hi, prior_r[i, j] + search)
                dc_lo = min(dc_lo, prior_c[i, j] - search)
                dc_hi = max(dc_hi, prior_c[i, j] + search)
    return dr_lo, dr_hi, dc_lo, dc_hi


@numba.njit(cache=True, nogil=True)
def _chip_statistics(reference: np.ndarray, tops: np.ndarray, lefts: np.ndarray, fast: np.ndarray, i0: int, i1: int,
                     j0: int, j1: int, chip: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum and inverse standard deviation (as in :func:`window_statistics`) of the fast points' reference chips."""
    n = float(chip * chip)
    chip_sum = np.zeros((i1 - i0, j1 - j0))
    chip_inv_std = np.zeros((i1 - i0, j1 - j0))
    for i in range(i0, i1):
        for j in range(j0, j1):
            if fast[i, j]:
                total = 0.0
                total2 = 0.0
                for y in range(tops[i], tops[i] + chip):
                    for x in range(lefts[j], lefts[j] + chip):
                        v = np.float64(reference[y, x])
                        total += v
                        total2 += v * v
                variance = total2 - total * total / n
                chip_sum[i - i0, j - j0] = total
                chip_inv_std[i - i0, j - j0] = 1.0 / math.sqrt(variance) if variance > 1e-9 * total2 else 0.0
    return chip_sum, chip_inv_std


@numba.njit(cache=True, nogil=True)
def _cell_products(reference: np.ndarray, secondary: np.ndarray, y0: int, x0: int, cell: int, dr: int, dc_lo: int,
                   cells: np.ndarray) -> None:
    """``cells[cr, cc, t] = sum over cell (cr, cc) of r(u) s(u + (dr, dc_lo + t))``, cells starting at ``(y0, x0)``.

    The innermost loop runs over the offsets ``t`` (contiguous secondary pixels,
    vectorised); a cell's sum always runs in the same order.
    """
    n_cr, n_cc, n_dc = cells.shape
    cell_sum = np.empty(n_dc)
    for cr in range(n_cr):
        ya = y0 + cr * cell
        for cc in range(n_cc):
            cell_sum[:] = 0.0
            xa = x0 + cc * cell
            for k in range(cell):
                r_row = reference[ya + k, xa : xa + cell]
                s_row = secondary[ya + k + dr, xa + dc_lo : xa + dc_lo + cell + n_dc]  # slices: no index wrap-around
                for j in range(cell):
                    r_value = np.float64(r_row[j])
                    for t in range(n_dc):
                        cell_sum[t] += r_value * s_row[j + t]
            cells[cr, cc] = cell_sum


@numba.njit(cache=True, nogil=True)
def _group_surfaces(reference: np.ndarray, secondary: np.ndarray, mean: np.ndarray, inv_std: np.ndarray,
                    tops: np.ndarray, lefts: np.ndarray, prior_r: np.ndarray, prior_c: np.ndarray, fast: np.ndarray,
                    i0: int, i1: int, j0: int, j1: int, chip: int, cell: int, search: int,
                    surfaces: np.ndarray) -> bool:
    """Surfaces of the fast points of grid rows ``[i0, i1)`` and columns ``[j0, j1)`` (see :func:`grid_surfaces`).

    Returns False, writing nothing, when the group's search windows spread over
    more than :data:`MAX_GROUP_SPREAD` surfaces or the union would read outside the
    images: the caller then matches its points one by one.
    """
    n_c = prior_r.shape[1]
    size = 2 * search + 1
    m = chip // cell
    dr_lo, dr_hi, dc_lo, dc_hi = _search_union(prior_r, prior_c, fast, i0, i1, j0, j1, search)
    if dr_lo > dr_hi:
        return True
    y0, x0 = tops[i0], lefts[j0]
    n_cr = (tops[i1 - 1] + chip - y0) // cell
    n_cc = (lefts[j1 - 1] + chip - x0) // cell
    width = n_cc * cell
    height, full_width = secondary.shape
    too_spread = dr_hi - dr_lo + 1 > MAX_GROUP_SPREAD * size or dc_hi - dc_lo + 1 > MAX_GROUP_SPREAD * size
    outside = y0 + dr_lo < 0 or x0 + dc_lo < 0 or y0 + n_cr * cell + dr_hi > height or x0 + width + dc_hi > full_width
    if too_spread or outside:
        return False
    chip_sum, chip_inv_std = _chip_statistics(reference, tops, lefts, fast, i0, i1, j0, j1, chip)
    n_dc = dc_hi - dc_lo + 1
    cells = np.empty((n_cr, n_cc, n_dc))  # sum_cell r * s_d for the current dr, every dc
    chip_rows = np.empty((i1 - i0, n_cc, n_dc))  # the same summed over the m cells of each point row's chips
    products = np.empty(size)
    for dr in range(dr_lo, dr_hi + 1):
        _cell_products(reference, secondary, y0, x0, cell, dr, dc_lo, cells)
        for i in range(i0, i1):
            first = (tops[i] - y0) // cell
            rows_sum = chip_rows[i - i0]
            rows_sum[:] = 0.0
            for k in range(m):
                rows_sum += cells[first + k]
        for i in range(i0, i1):
            for j in range(j0, j1):
                u = dr - prior_r[i, j] + search
                if not fast[i, j] or u < 0 or u >= size:
                    continue
                first = (lefts[j] - x0) // cell
                offset = prior_c[i, j] - search - dc_lo
                products[:] = 0.0
                for k in range(m):
                    row = chip_rows[i - i0, first + k, offset : offset + size]  # slices: no index wrap-around
                    for v in range(size):
                        products[v] += row[v]
                wy = tops[i] + dr
                wx = lefts[j] + prior_c[i, j] - search
                window_mean = mean[wy, wx : wx + size]
                window_inv_std = inv_std[wy, wx : wx + size]
                r_sum = chip_sum[i - i0, j - j0]
                r_inv = chip_inv_std[i - i0, j - j0]
                out = surfaces[i * n_c + j, u]
                for v in range(size):
                    value = (products[v] - r_sum * window_mean[v]) * window_inv_std[v] * r_inv
                    value = 1.0 if value > 1.0 else value
                    out[v] = -1.0 if value < -1.0 else value
    return True


@numba.njit(cache=True, nogil=True)
def grid_surfaces(reference: np.ndarray, secondary: np.ndarray, tops: np.ndarray, lefts: np.ndarray,
                  prior_r: np.ndarray, prior_c: np.ndarray, fast: np.ndarray, chip: int, cell: int, search: int,
                  surfaces: np.ndarray) -> None:
    """NCC surfaces (OpenCV ``TM_CCOEFF_NORMED``) of the chips of a regular grid, written into ``surfaces``.

    Parameters
    ----------
    reference, secondary
        2-D float arrays of the same shape, without NaN (the chips and windows of
        ``fast`` points must hold no nodata).
    tops, lefts
        1-D int64: top row of the chips of each grid row and left column of each
        grid column (px), evenly spaced by a multiple of ``cell``.
    prior_r, prior_c
        ``(n_rows, n_cols)`` int64 prior offsets (px), the centres of the searches.
    fast
        ``(n_rows, n_cols)`` bool: the points to match; others are left untouched.
    chip, cell, search
        Chip edge, cell edge (dividing ``chip`` and the grid step) and search radius (px).
    surfaces
        ``(n_rows * n_cols, 2 search + 1, 2 search + 1)`` float32 output: row ``u``,
        column ``v`` of point ``k`` holds the NCC at offset ``prior + (u, v) - search``.
        Every window of a ``fast`` point must lie inside ``secondary``.
    """
    mean, inv_std = window_statistics(secondary, chip, cell)
    n_r, n_c = prior_r.shape
    for gi in range(0, n_r, GROUP_POINTS):
        for gj in range(0, n_c, GROUP_POINTS):
            i1, j1 = min(gi + GROUP_POINTS, n_r), min(gj + GROUP_POINTS, n_c)
            if not _group_surfaces(reference, secondary, mean, inv_std, tops, lefts, prior_r, prior_c, fast,
                                   gi, i1, gj, j1, chip, cell, search, surfaces):
                for i in range(gi, i1):
                    for j in range(gj, j1):
                        _group_surfaces(reference, secondary, mean, inv_std, tops, lefts, prior_r, prior_c, fast,
                                        i, i + 1, j, j + 1, chip, cell, search, surfaces)


@numba.njit(cache=True, nogil=True)
def masked_ncc_around(template: np.ndarray, template_valid: np.ndarray, image: np.ndarray, image_valid: np.ndarray,
                      row: int, col: int, min_overlap: float) -> np.ndarray:
    """Exact NCC over the pixels valid in both, at the 3 x 3 offsets around ``(row, col)`` of ``image``.

    ``(row, col)`` is the top-left corner of the chip in ``image`` at the centre
    offset; the ``chip + 2`` square around it must lie inside ``image``. Offsets with
    fewer than ``min_overlap`` common valid pixels (or without variance) get
    ``-inf``. Invalid pixels may hold anything. Returns a ``(3, 3)`` float64 array.
    """
    chip = template.shape[0]
    region_sum = 0.0
    region_count = 0
    for y in range(row - 1, row + chip + 1):
        for x in range(col - 1, col + chip + 1):
            if image_valid[y, x]:
                region_sum += image[y, x]
                region_count += 1
    centre = region_sum / region_count if region_count else 0.0  # precision: sums of centred values
    out = np.full((3, 3), -np.inf)
    for a in range(3):
        for b in range(3):
            count = 0
            sum_t = sum_w = sum_tt = sum_ww = sum_tw = 0.0
            for y in range(chip):
                for x in range(chip):
                    yy, xx = row - 1 + a + y, col - 1 + b + x
                    if template_valid[y, x] and image_valid[yy, xx]:
                        t = np.float64(template[y, x])
                        w = image[yy, xx] - centre
                        count += 1
                        sum_t += t
                        sum_w += w
                        sum_tt += t * t
                        sum_ww += w * w
                        sum_tw += t * w
            if count < max(min_overlap, 2.0):
                continue
            var_t = sum_tt - sum_t * sum_t / count
            var_w = sum_ww - sum_w * sum_w / count
            if var_t > 0 and var_w > 0:
                ncc = (sum_tw - sum_t * sum_w / count) / math.sqrt(var_t * var_w)
                if math.isfinite(ncc):
                    out[a, b] = min(1.0, max(-1.0, ncc))
    return out
