r"""Synthetic Sentinel-1-like sea-ice image pairs with exact rigid floe motion.

The scene is a Voronoi tessellation of ``n_floes`` floes separated by open-water
leads. Every floe ``k`` moves rigidly between the two acquisitions: a rotation by
``phi_k`` about its centroid ``c_k`` followed by a translation ``t_k`` (pixels)::

    q  ->  c_k + R(phi_k) (q - c_k) + t_k

so the displacement of the ice at reference position ``q`` is exactly
``d(q) = c_k + R(phi_k)(q - c_k) + t_k - q`` (no approximation). ``phi`` is
counter-clockwise positive as seen on a north-up image (the map frame, x east,
y north); in pixel coordinates (row down, column right) ``R`` maps
``(dcol, drow)`` to ``(dcol cos phi + drow sin phi, -dcol sin phi + drow cos phi)``,
the convention of ``cv2.getRotationMatrix2D``.

Backscatter: ice is a log-normal texture of two Gaussian-filtered white-noise
scales (``ice_db`` mean, ``ice_std_db`` spread); leads are dark and nearly
textureless (``water_db``, 0.3 dB); both images get independent multiplicative
gamma speckle of ``looks`` looks (mean 1, variance ``1 / looks``) — speckle of
two acquisitions a day apart is uncorrelated — and are returned in dB.

The secondary image samples the reference's noise-free texture at the inverse
floe motion (bicubic, ``cv2.remap``): the truth displacement is exact, the image
values carry that interpolation's error (the texture's shortest scale is 1.5 px
sigma, so it is small). Where floes would overlap in the secondary, the floe
with the larger label is on top; pixels no floe covers are open water.

Sizes are free: 512 x 512 px for the tests, 5000 x 5000 px for the benchmark
(labels computed on a grid coarsened ``min(shape) // 1024`` times, then the lead
mask interpolated, which keeps that fast).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from scipy import ndimage
from scipy.spatial import cKDTree

from cryocube import conventions as cv

__all__ = ["floe_pair", "inject_wrong_matches", "truth_at", "read_s1_ew_pair", "S1_EW_PAIR_DIR"]

#: The real Sentinel-1B EW HH pair (north of Svalbard, 2020-03-01/02, 100 m, EPSG:5041), read-only, next to the repository.
S1_EW_PAIR_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "s1_ew_seaice_drift_pair"
#: Its two files and their acquisition start times (UTC, from the file names).
S1_EW_PAIR_FILES = (
    ("clip_HH_S1B_EW_GRDM_1SDH_20200301T083237_20200301T083346_020496_026D68_5471_adjusted.tif", "2020-03-01T08:32:37"),
    ("clip_HH_S1B_EW_GRDM_1SDH_20200302T073529_20200302T073629_020510_026DD5_27F9_adjusted.tif", "2020-03-02T07:35:29"),
)


def _texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Zero-mean, unit-variance float32 texture: white noise filtered at 1.5 and 5 px (sigma), summed."""
    out = np.zeros(shape, dtype=np.float32)
    for sigma, weight in ((1.5, 1.0), (5.0, 0.8)):
        noise = rng.standard_normal(shape, dtype=np.float32)
        layer = cv2.GaussianBlur(noise, (0, 0), sigma)
        out += weight * layer / layer.std()
    return out / out.std()


def _floe_labels(rng: np.random.Generator, shape: tuple[int, int], n_floes: int, lead_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi floe labels (int32) and lead mask (bool) of ``shape``, from ``n_floes`` random seeds."""
    height, width = shape
    seeds = rng.uniform((0, 0), (height, width), size=(n_floes, 2))
    factor = max(1, min(shape) // 1024)
    rows = np.arange(0, height + factor, factor, dtype=np.float64)
    cols = np.arange(0, width + factor, factor, dtype=np.float64)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    dist, index = cKDTree(seeds).query(np.column_stack([rr.ravel(), cc.ravel()]), k=2)
    # distance to the bisector between the two nearest seeds: (d2^2 - d1^2) / (2 |s2 - s1|)
    gap = np.linalg.norm(seeds[index[:, 1]] - seeds[index[:, 0]], axis=1)
    boundary = ((dist[:, 1] ** 2 - dist[:, 0] ** 2) / (2 * gap)).reshape(rr.shape).astype(np.float32)
    labels = index[:, 0].reshape(rr.shape).astype(np.int32)
    if factor > 1:
        scale = np.array([[1.0 / factor, 0, 0], [0, 1.0 / factor, 0]])
        boundary = cv2.warpAffine(boundary, scale, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        labels = cv2.warpAffine(labels.astype(np.float32), scale, (width, height),
                                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP).astype(np.int32)
    else:
        boundary, labels = boundary[:height, :width], labels[:height, :width]
    return labels, boundary < lead_px / 2


def _motion(phi_rad: float) -> np.ndarray:
    """2 x 2 rotation of ``(dcol, drow)`` pixel offsets by ``phi`` counter-clockwise on a north-up image."""
    c, s = math.cos(phi_rad), math.sin(phi_rad)
    return np.array([[c, s], [-s, c]])


def floe_pair(
    shape: tuple[int, int] = (512, 512),
    *,
    n_floes: int = 8,
    pixel_m: float = 100.0,
    dt_s: float = 86400.0,
    mean_shift_px: tuple[float, float] = (12.0, -9.0),
    shift_spread_px: float = 4.0,
    max_rotation_deg: float = 4.0,
    lead_px: float = 6.0,
    looks: float = 8.0,
    ice_db: float = -14.0,
    ice_std_db: float = 2.5,
    water_db: float = -24.0,
    seed: int = 0,
    start: str = "2020-03-01T08:00:00",
    crs: str = "EPSG:5041",
) -> tuple[xr.DataArray, xr.DataArray, xr.Dataset]:
    """A reference/secondary dB image pair of rigidly drifting floes, and the exact truth.

    Parameters
    ----------
    shape
        ``(rows, cols)`` of both images (px).
    n_floes
        Number of floes (Voronoi cells of uniformly random seeds).
    pixel_m
        Pixel spacing (m); x grows east with the column, y north against the row.
    dt_s
        Time between the acquisitions (s).
    mean_shift_px, shift_spread_px
        Common translation ``(drow, dcol)`` (px) of all floes and the half-width (px)
        of the uniform per-floe deviation from it.
    max_rotation_deg
        Floe rotations are uniform in ``[-max_rotation_deg, max_rotation_deg]`` (deg).
    lead_px
        Width of the open-water leads between floes (px).
    looks
        Equivalent number of looks of the gamma speckle.
    ice_db, ice_std_db, water_db
        Mean and spread of the ice backscatter and mean of the water (dB).
    seed
        Seed of everything (``numpy.random.default_rng``).
    start
        Time of the reference acquisition (UTC); the secondary is ``dt_s`` later.
    crs
        CRS written on the images.

    Returns
    -------
    reference, secondary
        float32 ``(y, x)`` DataArrays in dB with scalar ``time`` coordinates.
    truth
        ``displacement_x``, ``displacement_y`` (m, map axes), ``rotation_deg``
        (deg, counter-clockwise) and ``floe`` (label, -1 on water) at the
        reference pixels (NaN on water); per-floe ``floe_shift_x``,
        ``floe_shift_y`` (m, of the centroid) and ``floe_rotation_deg`` along
        ``floe_id``. attrs: ``dt_s``.
    """
    height, width = (int(s) for s in shape)
    if height < 64 or width < 64:
        raise ValueError(f"shape must be at least 64 x 64 px, got {shape}")
    if int(n_floes) < 2:
        raise ValueError(f"n_floes must be >= 2, got {n_floes!r}")
    if not looks > 0 or not pixel_m > 0 or not dt_s > 0:
        raise ValueError(f"looks, pixel_m and dt_s must be positive, got {looks!r}, {pixel_m!r}, {dt_s!r}")
    rng = np.random.default_rng(seed)
    labels, lead = _floe_labels(rng, (height, width), int(n_floes), float(lead_px))
    n = int(n_floes)
    shifts = np.asarray(mean_shift_px, dtype=np.float64) + rng.uniform(-shift_spread_px, shift_spread_px, size=(n, 2))
    rotations = rng.uniform(-max_rotation_deg, max_rotation_deg, size=n)
    ice = ice_db + ice_std_db * _texture(rng, (height, width))
    water = water_db + 0.3 * _texture(rng, (height, width))
    clean = np.where(lead, water, ice).astype(np.float32)

    ice_labels = np.where(lead, -1, labels)
    boxes = ndimage.find_objects(ice_labels + 1, max_label=n)  # bounding box of each floe's ice
    disp = np.full((2, height, width), np.nan, dtype=np.float64)
    rotation = np.full((height, width), np.nan, dtype=np.float32)
    secondary = water.astype(np.float32).copy()
    centroids = np.zeros((n, 2))
    for k, box in enumerate(boxes):
        if box is None:
            continue
        floe = (ice_labels[box] == k).astype(np.uint8)
        rk, ck = np.nonzero(floe)
        rk, ck = rk + box[0].start, ck + box[1].start
        centroids[k] = rk.mean(), ck.mean()
        m = _motion(math.radians(rotations[k]))
        # forward: exact displacement at the floe's reference pixels
        rel = np.stack([ck - centroids[k, 1], rk - centroids[k, 0]])
        moved = m @ rel
        disp[0, rk, ck] = moved[1] - rel[1] + shifts[k, 0]
        disp[1, rk, ck] = moved[0] - rel[0] + shifts[k, 1]
        rotation[rk, ck] = rotations[k]
        # inverse: secondary pixels inside the moved floe's bounding box
        corners = m @ np.array([[ck.min(), ck.max(), ck.min(), ck.max()], [rk.min(), rk.min(), rk.max(), rk.max()]],
                               dtype=np.float64) - m @ centroids[k, ::-1, None] + centroids[k, ::-1, None] + shifts[k, ::-1, None]
        c0, c1 = (int(np.clip(f(corners[0]), 0, width)) for f in (lambda a: math.floor(a.min()) - 2, lambda a: math.ceil(a.max()) + 3))
        r0, r1 = (int(np.clip(f(corners[1]), 0, height)) for f in (lambda a: math.floor(a.min()) - 2, lambda a: math.ceil(a.max()) + 3))
        if r1 <= r0 or c1 <= c0:
            continue
        p_c = np.arange(c0, c1, dtype=np.float64)[None, :] - centroids[k, 1] - shifts[k, 1]
        p_r = np.arange(r0, r1, dtype=np.float64)[:, None] - centroids[k, 0] - shifts[k, 0]
        inv = m.T  # inverse rotation
        q_c = (inv[0, 0] * p_c + inv[0, 1] * p_r + centroids[k, 1]).astype(np.float32)
        q_r = (inv[1, 0] * p_c + inv[1, 1] * p_r + centroids[k, 0]).astype(np.float32)
        on_floe = cv2.remap(floe, q_c - np.float32(box[1].start), q_r - np.float32(box[0].start), cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
        values = cv2.remap(clean, q_c, q_r, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        patch = secondary[r0:r1, c0:c1]
        patch[on_floe] = values[on_floe]

    def speckled(db: np.ndarray, which: int) -> np.ndarray:
        gamma = np.random.default_rng([seed, which]).gamma(looks, 1.0 / looks, size=db.shape).astype(np.float32)
        return (db + 10.0 * np.log10(gamma)).astype(np.float32)

    t0 = np.datetime64(start, "ns")
    t1 = t0 + np.timedelta64(int(round(dt_s * 1e9)), "ns")
    x = (np.arange(width) + 0.5) * pixel_m
    y = (height - np.arange(height) - 0.5) * pixel_m
    coords = {cv.Y: (cv.Y, y, {"units": "m"}), cv.X: (cv.X, x, {"units": "m"})}
    attrs = {"units": "dB", "long_name": "HH backscatter coefficient sigma0"}

    def image(values: np.ndarray, t: np.datetime64) -> xr.DataArray:
        out = xr.DataArray(values, dims=(cv.Y, cv.X), coords={**coords, cv.TIME: t}, attrs=attrs)
        return out.rio.write_crs(crs)

    reference = image(speckled(clean, 1), t0)
    secondary_image = image(speckled(secondary, 2), t1)
    truth = xr.Dataset(
        {
            "displacement_x": ((cv.Y, cv.X), (disp[1] * pixel_m).astype(np.float32), {"units": "m", "long_name": "true displacement along x"}),
            "displacement_y": ((cv.Y, cv.X), (-disp[0] * pixel_m).astype(np.float32), {"units": "m", "long_name": "true displacement along y"}),
            "rotation_deg": ((cv.Y, cv.X), rotation, {"units": "degree", "long_name": "true floe rotation, counter-clockwise"}),
            "floe": ((cv.Y, cv.X), ice_labels.astype(np.int32), {"long_name": "floe label, -1 on water"}),
            "floe_shift_x": ("floe_id", shifts[:, 1] * pixel_m, {"units": "m"}),
            "floe_shift_y": ("floe_id", -shifts[:, 0] * pixel_m, {"units": "m"}),
            "floe_rotation_deg": ("floe_id", rotations, {"units": "degree"}),
        },
        coords={**coords, "floe_id": np.arange(n)},
        attrs={"dt_s": float(dt_s)},
    )
    return reference, secondary_image, truth.rio.write_crs(crs)


def truth_at(truth: xr.Dataset, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True ``displacement_x``, ``displacement_y`` (m) and ``rotation_deg`` at map points (nearest pixel; NaN on water)."""
    px = xr.DataArray(np.asarray(x, dtype=np.float64), dims="point")
    py = xr.DataArray(np.asarray(y, dtype=np.float64), dims="point")
    at = truth[["displacement_x", "displacement_y", "rotation_deg"]].sel(x=px, y=py, method="nearest")
    return at.displacement_x.values, at.displacement_y.values, at.rotation_deg.values


def inject_wrong_matches(vectors: pd.DataFrame, fraction: float, *, max_displacement_m: float, seed: int = 0) -> pd.DataFrame:
    """``vectors`` with ``fraction`` of its rows given a random end point, marked in a boolean ``injected`` column.

    The wrong end points are uniform in the disc of radius ``max_displacement_m``
    around the start (so they pass a speed limit of that size), which is what a
    wrong but plausible descriptor match looks like. Pixel columns (``row2``,
    ``col2``) are updated too when present, from the pixel size in
    ``vectors.attrs["pixel_size"]`` (``(dy, dx)``).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    out = vectors.copy()
    n = len(out)
    wrong = np.zeros(n, dtype=bool)
    wrong[rng.choice(n, size=int(round(fraction * n)), replace=False)] = True
    radius = max_displacement_m * np.sqrt(rng.uniform(0.05, 1.0, size=wrong.sum()))
    angle = rng.uniform(0, 2 * np.pi, size=wrong.sum())
    out.loc[wrong, "x2"] = out.loc[wrong, "x1"].to_numpy() + radius * np.cos(angle)
    out.loc[wrong, "y2"] = out.loc[wrong, "y1"].to_numpy() + radius * np.sin(angle)
    if {"row2", "col2"} <= set(out.columns) and "pixel_size" in vectors.attrs:
        dy, dx = vectors.attrs["pixel_size"]
        out.loc[wrong, "col2"] = out.loc[wrong, "col1"].to_numpy() + radius * np.cos(angle) / dx
        out.loc[wrong, "row2"] = out.loc[wrong, "row1"].to_numpy() + radius * np.sin(angle) / dy
    out["injected"] = wrong
    out.attrs = dict(vectors.attrs)
    return out


def read_s1_ew_pair(data_dir: str | Path | None = None, *, chunks: dict | None = None) -> tuple[xr.DataArray, xr.DataArray]:
    """The real S1B EW GRDM HH sigma0 pair (dB, 1135 x 701 px at 100 m, EPSG:5041) as ``(y, x)`` DataArrays with ``time``.

    Parameters
    ----------
    data_dir
        Folder of the two GeoTIFFs (default :data:`S1_EW_PAIR_DIR`); nothing is copied.
    chunks
        Passed to ``rioxarray.open_rasterio`` (None: numpy-backed).

    Raises
    ------
    FileNotFoundError
        Naming the missing file.
    """
    folder = Path(data_dir) if data_dir is not None else S1_EW_PAIR_DIR
    out = []
    for name, start in S1_EW_PAIR_FILES:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"Sentinel-1 EW pair file not found: {path}")
        image = rioxarray.open_rasterio(path, chunks=chunks).squeeze("band", drop=True)
        image = image.astype(np.float32).assign_coords({cv.TIME: np.datetime64(start, "ns")})
        out.append(image.assign_attrs(units="dB", long_name="HH backscatter coefficient sigma0", source=name))
    return out[0], out[1]
