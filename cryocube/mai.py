r"""Multi-aperture interferometry (MAI): azimuth displacement and velocity from one SLC pair.

Method (Bechor & Zebker 2006, GRL 33, L16311; Jung et al. 2009, IEEE TGRS 47)
------------------------------------------------------------------------------
The azimuth (Doppler) spectrum of each SLC, of normalized width ``b`` (processed
Doppler bandwidth / PRF) around zero Doppler, is split by two complex band-pass
filters into a **forward**-looking sub-aperture (positive Doppler, centre
``+n b / 2``) and a **backward**-looking one (centre ``-n b / 2``), each of width
``(1 - n) b`` (``n = split``, the normalized squint separation: ``n = 0.5`` halves
the band). With ``I_k = <s1_k conj(s2_k)>`` multilooked over ``looks`` windows
(:mod:`cryocube.coherent` convention), the MAI phase is ::

    phi_MAI = arg(I_fwd conj(I_bwd))

A feature moved by ``delta`` pixels along increasing row index (azimuth time, the
flight direction; ``secondary(q + delta) = reference(q)``) multiplies the
spectrum by ``exp(-2 pi i f delta)``, so each sub-aperture interferogram gets the
phase ``+2 pi f_k delta`` with ``f_k`` the power-weighted mean Doppler of its band
(cycles/pixel); LoS and topographic phase are common to both and cancel ::

    phi_MAI = 2 pi (f_fwd - f_bwd) delta = 2 pi df delta
    dx      = phi_MAI * Delta_a / (2 pi df)                  (m, + along the flight direction)

``df`` is computed from the actual filters and a rectangular azimuth spectrum of
width ``b`` (:func:`subaperture_filters`; ``df ~= n b``). For a full-aperture
stripmap SLC (``b PRF = 2 v / l``, ``Delta_a = v / PRF``) this is Bechor & Zebker's
``dx = phi_MAI l / (4 pi n)`` with ``l`` the antenna length. Their formula carries a
minus sign because it is written for the opposite interferogram/displacement
convention; with ``I = s1 conj(s2)`` and the displacement from reference to
secondary the sign is ``+`` (checked against simulated truth in the tests).

Accuracy: each sub-aperture phase has the Cramer-Rao variance ``(1 - gamma_k^2) /
(2 N_k gamma_k^2)`` with ``N_k`` its independent looks (``L_az b_eq L_rg b_rg``,
``b_eq`` the equivalent width of the sub-band); the two are independent for
``n >= 0.5`` (disjoint bands), so ::

    sigma_phi_MAI^2 = sum_k (1 - gamma_k^2) / (2 N_k gamma_k^2)
    sigma_dx        = Delta_a / (2 pi df) * sigma_phi_MAI
                    = (l / 2) / (2 pi n) * sqrt(2) * sqrt((1 - gamma^2) / (2 N_sub gamma^2))   (equal bands)

which is the ``(1 / (2 pi n)) sqrt((1 - gamma^2) / (2 N gamma^2))`` form of the
literature in units of the azimuth resolution ``l / 2``, with the ``sqrt(2)`` of
the difference of two phases and ``N_sub`` the looks of one sub-aperture.

Blockwise
---------
The band-pass filters are FIR filters of ``taps`` coefficients (Kaiser-windowed
sinc, complex-modulated) applied along azimuth, so a block needs only
``(taps - 1) / 2`` rows of halo: the answer is the same for any chunking (the
scene is zero-padded at its top and bottom edges in every case; the first and
last ``(taps - 1) / 2`` rows see the padding). Chunks are realigned to multiples
of ``looks`` (:func:`cryocube.coherent.looked_blocks`); the optional mean filter
runs with ``map_overlap`` (reflecting at the scene edges).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage, signal

from cryocube import conventions as cv
from cryocube.coherent import (product_attrs, calibrate, check_pair, coherence_from_sums, effective_looks, look_sums,
                               looked_blocks, median_offset, phase_sigma)
from cryocube.gps import DAYS_PER_YEAR

#: Filters applied to the MAI interferograms.
FILTERS: Final = (None, "mean", "goldstein")


def subaperture_filters(azimuth_bandwidth: float, split: float, taps: int = 65,
                        beta: float = 5.0) -> tuple[np.ndarray, np.ndarray, float, float]:
    r"""Forward / backward azimuth band-pass FIR filters and their effective separation.

    ``h_fwd[k] = w sinc(w k) kaiser_beta[k] exp(2 pi i f_c k)`` for
    ``k = -(taps-1)/2 .. (taps-1)/2``, ``w = (1 - split) b``, ``f_c = split b / 2``;
    ``h_bwd = conj(h_fwd)``. With ``W(f) = |H_fwd(f)|^2`` over the rectangular
    azimuth spectrum ``|f| <= b / 2`` (cycles/pixel):

    * ``df = 2 sum f W / sum W`` (the mean-Doppler separation, cycles/pixel);
    * ``b_eq = (sum W)^2 / sum W^2 df_grid`` (equivalent width of the sub-band).

    Returns
    -------
    h_fwd, h_bwd, df, b_eq
        complex128 filters of length ``taps``, ``df`` and ``b_eq`` in cycles/pixel.
    """
    if not 0 < azimuth_bandwidth <= 1:
        raise ValueError(f"azimuth_bandwidth must lie in (0, 1] (Doppler bandwidth / PRF), got {azimuth_bandwidth!r}")
    if not 0 < split < 1:
        raise ValueError(f"split must lie in (0, 1), got {split!r}")
    if int(taps) != taps or taps < 3 or taps % 2 == 0:
        raise ValueError(f"taps must be an odd integer >= 3, got {taps!r}")
    half = (int(taps) - 1) // 2
    k = np.arange(-half, half + 1)
    w, fc = (1.0 - split) * azimuth_bandwidth, split * azimuth_bandwidth / 2.0
    h_fwd = w * np.sinc(w * k) * np.kaiser(int(taps), beta) * np.exp(2j * np.pi * fc * k)
    f = np.linspace(-azimuth_bandwidth / 2, azimuth_bandwidth / 2, 4001)
    weight = np.abs(np.exp(-2j * np.pi * f[:, None] * k[None, :]) @ h_fwd) ** 2
    step = f[1] - f[0]
    df = 2.0 * float((f * weight).sum() / weight.sum())
    b_eq = float(weight.sum() ** 2 * step / (weight**2).sum())
    return h_fwd, np.conj(h_fwd), df, b_eq


def mai_kernel(slc1: np.ndarray, slc2: np.ndarray, phase: np.ndarray | None = None, *, h_fwd: np.ndarray,
               h_bwd: np.ndarray, looks: tuple[int, int]) -> np.ndarray:
    r"""Multilook sums of the forward and backward sub-aperture interferograms.

    ``slc1``/``slc2`` are ``(ny + taps - 1, nx)`` blocks with ``(taps - 1) / 2`` rows
    of halo above and below; each is convolved along azimuth with ``h_fwd`` and
    ``h_bwd`` (``'valid'`` part: the ``ny`` unpadded rows), then
    :func:`cryocube.coherent.look_sums` removing ``phase`` (rad, same padded
    block; None: nothing removed) from both sub-aperture products.

    Returns
    -------
    numpy.ndarray
        complex128 ``(6, ny // L_az, nx // L_rg)``: ``num_f, p1_f, p2_f, num_b, p1_b, p2_b``
        (powers real).
    """
    out = []
    halo = (h_fwd.size - 1) // 2
    inner = None if phase is None else phase[halo:phase.shape[0] - halo]
    for h in (h_fwd, h_bwd):
        s1, s2 = (signal.fftconvolve(s.astype(np.complex128), h[:, None], mode="valid", axes=0) for s in (slc1, slc2))
        out.extend(look_sums(s1, s2, looks, inner))
    return np.stack(out)


def _mean_filter(stack: np.ndarray, size: int) -> np.ndarray:
    """``size x size`` moving mean of every plane (real and imaginary parts), reflecting at the edges."""
    sizes = (1, size, size)
    return (ndimage.uniform_filter(stack.real, sizes, mode="reflect")
            + 1j * ndimage.uniform_filter(stack.imag, sizes, mode="reflect"))


def _sigma_mai(coh_f: np.ndarray, coh_b: np.ndarray, *, n_f: float, n_b: float) -> np.ndarray:
    return np.sqrt(phase_sigma(coh_f, n_f) ** 2 + phase_sigma(coh_b, n_b) ** 2)


def mai(slc1: xr.DataArray, slc2: xr.DataArray, *, split: float = 0.5, looks: Sequence[int] = (20, 4),
        azimuth_bandwidth: float | None = None, azimuth_spacing_m: float | None = None,
        range_bandwidth: float | None = None, taps: int = 65, filter: str | None = "mean", filter_px: int = 3,
        alpha: float = 0.5, fft_px: int = 32, phase: xr.DataArray | None = None, dt_days: float | None = None,
        gcps: pd.DataFrame | None = None) -> xr.Dataset:
    r"""Azimuth displacement (and velocity) by multi-aperture interferometry, with sigma.

    See the module docstring for the method, formula and sign. Lazy, blockwise on
    ``(y, x)`` chunks (FIR halo along azimuth; result independent of the chunks).

    Parameters
    ----------
    slc1, slc2
        Coregistered complex SLCs on ``(y, x)`` = (azimuth, range).
    split
        Normalized squint separation ``n`` in (0, 1); 0.4-0.5 usual.
    looks
        ``(L_az, L_rg)`` multilook window (pixels).
    azimuth_bandwidth, range_bandwidth
        Processed bandwidth / sampling rate in azimuth and range (default: the
        SLC attrs of the same names; ``range_bandwidth`` 1 when absent).
    azimuth_spacing_m
        Azimuth pixel spacing (m) (default: the SLC attr).
    taps
        Odd FIR length of the sub-aperture filters.
    filter
        ``"mean"``: ``filter_px x filter_px`` moving mean of the sub-aperture sums
        (a larger sliding look window; sigma uses ``N_k filter_px^2`` looks);
        ``"goldstein"``: ``cryocube.unwrap.goldstein(alpha, fft_px)`` on the MAI
        interferogram (sigma stays that of the unfiltered phase, an upper bound);
        None: no filter.
    phase
        Interferometric phase (rad, on the SLC grid) removed from both
        sub-aperture products before multilooking: the DEM phase plus the
        deformation phase (e.g. the unwrapped DInSAR phase interpolated to the SLC
        grid). It cancels in ``phi_MAI`` anyway, but fringes inside a look window
        decorrelate the sums (a steep LoS gradient at a shear margin can drive
        the sub-aperture coherence to ~0); None: nothing removed.
    dt_days
        Time between the acquisitions (days): adds ``v_azimuth`` and its error (m/yr).
    gcps
        Ground control points (columns ``x``, ``y``, ``v_azimuth`` m/yr, 0 on rock;
        needs ``dt_days``): the median offset at the GCPs is removed from ``v_azimuth``
        (:func:`cryocube.coherent.calibrate`).

    Returns
    -------
    xr.Dataset
        On the multilooked grid: ``mai_phase`` (rad), ``azimuth_displacement`` and
        ``azimuth_displacement_error`` (m, + along the flight direction),
        ``coherence_forward``, ``coherence_backward``; with ``dt_days`` also
        ``v_azimuth``, ``v_azimuth_error`` (m/yr); with ``gcps`` ``gcp_offset`` and
        ``calibration_offset`` (m/yr). Attrs record ``separation_cycles_per_px``
        (``df``), the sub-aperture looks and the parameters.

    Raises
    ------
    TypeError, ValueError
        Bad SLCs or looks, ``split``/``taps``/``filter``/``filter_px`` out of range,
        missing bandwidth or spacing, ``gcps`` without ``dt_days``.
    """
    slc1, slc2, looks = check_pair(slc1, slc2, looks)

    def attr(value: float | None, name: str, default: float | None = None) -> float:
        value = slc1.attrs.get(name, default) if value is None else value
        if value is None:
            raise ValueError(f"{name} not given and not in the attrs of slc1: pass {name}=")
        return float(value)

    azimuth_bandwidth = attr(azimuth_bandwidth, "azimuth_bandwidth")
    azimuth_spacing_m = attr(azimuth_spacing_m, "azimuth_spacing_m")
    range_bandwidth = attr(range_bandwidth, "range_bandwidth", 1.0)
    if not azimuth_spacing_m > 0:
        raise ValueError(f"azimuth_spacing_m must be > 0, got {azimuth_spacing_m!r}")
    if filter not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {filter!r}")
    if int(filter_px) != filter_px or filter_px < 1 or filter_px % 2 == 0:
        raise ValueError(f"filter_px must be a positive odd integer, got {filter_px!r}")
    if dt_days is not None and not (math.isfinite(dt_days) and dt_days > 0):
        raise ValueError(f"dt_days must be a positive finite number, got {dt_days!r}")
    if gcps is not None and dt_days is None:
        raise ValueError("gcps calibrate v_azimuth: pass dt_days as well")
    h_fwd, h_bwd, df, b_eq = subaperture_filters(azimuth_bandwidth, split, taps)

    if phase is not None and (not isinstance(phase, xr.DataArray) or set(phase.dims) != {cv.Y, cv.X}
                              or phase.shape != slc1.shape or np.issubdtype(phase.dtype, np.complexfloating)):
        raise ValueError(f"phase must be a real (y, x) DataArray with the SLC shape {slc1.shape}")
    phase = None if phase is None else phase.transpose(cv.Y, cv.X)
    stack, coords = looked_blocks(mai_kernel, [slc1, slc2, phase], looks, 6, np.complex128, depth_y=(int(taps) - 1) // 2,
                                  h_fwd=h_fwd, h_bwd=h_bwd, looks=looks)
    n_sub = effective_looks(slc1.assign_attrs(range_bandwidth=range_bandwidth), looks,
                            azimuth_fraction=b_eq / azimuth_bandwidth)
    if filter == "mean" and filter_px > 1:
        half = int(filter_px) // 2
        stack = (da.map_overlap(_mean_filter, stack, depth={0: 0, 1: half, 2: half}, boundary="reflect",
                                dtype=stack.dtype, size=int(filter_px)) if isinstance(stack, da.Array)
                 else _mean_filter(stack, int(filter_px)))
        n_sub *= filter_px**2
    planes = xr.DataArray(stack, dims=("term", cv.Y, cv.X), coords=coords)
    num_f, p1f, p2f, num_b, p1b, p2b = (planes.isel(term=i, drop=True) for i in range(6))
    coh_f = coherence_from_sums(num_f, abs(p1f), abs(p2f))  # ufuncs only: lazy on DataArrays
    coh_b = coherence_from_sums(num_b, abs(p1b), abs(p2b))
    product = num_f * np.conj(num_b)
    if filter == "goldstein":
        from cryocube.unwrap import goldstein

        norm = np.sqrt(abs(p1f) * abs(p2f) * abs(p1b) * abs(p2b))
        product = goldstein((product / norm).astype(np.complex64), alpha=alpha, fft_px=fft_px)
    phi = np.arctan2(product.imag, product.real)
    sigma_phi = xr.apply_ufunc(_sigma_mai, coh_f, coh_b, kwargs={"n_f": n_sub, "n_b": n_sub}, dask="parallelized",
                               output_dtypes=[np.float64])
    to_m = azimuth_spacing_m / (2.0 * math.pi * df)
    out = xr.Dataset({
        "mai_phase": phi.astype(np.float32).assign_attrs(units="rad", long_name="MAI phase arg(I_fwd conj(I_bwd))"),
        "azimuth_displacement": (phi * to_m).astype(np.float32).assign_attrs(
            units="m", long_name="azimuth displacement, positive along the flight direction"),
        "azimuth_displacement_error": (sigma_phi * to_m).astype(np.float32).assign_attrs(
            units="m", long_name="1-sigma error of the azimuth displacement (Cramer-Rao)"),
        "coherence_forward": coh_f.astype(np.float32).assign_attrs(units="1", long_name="forward sub-aperture coherence"),
        "coherence_backward": coh_b.astype(np.float32).assign_attrs(units="1",
                                                                    long_name="backward sub-aperture coherence"),
    })
    params: dict[str, Any] = {"split": float(split), "looks": list(looks), "azimuth_bandwidth": azimuth_bandwidth,
                              "azimuth_spacing_m": azimuth_spacing_m, "range_bandwidth": range_bandwidth,
                              "taps": int(taps), "filter": filter, "filter_px": int(filter_px), "alpha": float(alpha),
                              "fft_px": int(fft_px), "phase_removed": phase is not None, "dt_days": dt_days, "separation_cycles_per_px": df,
                              "subaperture_bandwidth": b_eq, "nlooks_subaperture": n_sub,
                              "formula": "dx = phi_MAI * azimuth_spacing_m / (2 pi df), + along flight, I = s1 conj(s2)"}
    if dt_days is not None:
        per_year = DAYS_PER_YEAR / dt_days
        v_az = (out["azimuth_displacement"] * per_year).astype(np.float32)
        if gcps is not None:
            v_az, out["gcp_offset"] = calibrate(v_az, gcps, column="v_azimuth")
            out["gcp_offset"].attrs.update(units="m/yr", long_name="uncalibrated azimuth velocity minus known, at each GCP")
            out["calibration_offset"] = median_offset(out["gcp_offset"],
                                                      "median GCP offset subtracted from v_azimuth")
            params["gcps"] = gcps[["x", "y", "v_azimuth"]].to_dict(orient="list")
        out["v_azimuth"] = v_az.assign_attrs(units="m/yr", long_name="velocity along the flight direction (MAI)")
        out["v_azimuth_error"] = (out["azimuth_displacement_error"] * per_year).astype(np.float32).assign_attrs(
            units="m/yr", long_name="1-sigma error of v_azimuth (Cramer-Rao)")
    return out.assign_attrs(product_attrs(slc1, params) | {"separation_cycles_per_px": df, "nlooks_subaperture": n_sub})
