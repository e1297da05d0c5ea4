"""Automatic weather station (AWS) records as ground truth for melt maps.

Three steps, each usable alone:

- :func:`read_aws_logger` parses a Campbell Scientific TOA5 logger file (the raw
  format of PROMICE / GC-Net stations) into an :class:`xarray.Dataset` on ``time``.
- :func:`aws_melt_days` turns a sub-daily air-temperature series (°C) into a daily
  melt flag: 1 = melt, 0 = no melt, NaN = unknown (too few samples that day).
- :func:`validate_melt` compares per-scene melt flags (from a melt map sampled at
  the station, or already per scene) with the AWS melt days: confusion table,
  overall accuracy and Cohen's kappa (kernel :func:`confusion_kappa`).

Times are UTC throughout (naive ``datetime64[ns]``); a "day" is a UTC calendar day.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import cryocube
from cryocube import conventions as cv

# --------------------------------------------------------------------------
# Reading TOA5 logger files
# --------------------------------------------------------------------------

#: Strings a Campbell logger writes for a missing or undefined value (CR1000: ``"NAN"``).
MISSING_STRINGS = frozenset({"NAN", "NaN", "nan", "INF", "+INF", "-INF", "inf", "-inf", ""})

#: Numeric missing-value codes turned into NaN (not in record counters, units ``RN``):
#: ``-9999`` (PROMICE / GC-Net fill value), ``-999`` (PROMICE logger code for a failed
#: sensor, e.g. ``TemperatureIce3m_Avg`` at KPC_U on 2019-07-05), ``±7999`` (Campbell
#: FP2 over-range, e.g. ``TemperatureRadSensor`` in the GC-Net bench test on
#: 2022-05-20 07:20 while the radiometer read ``"NAN"``).
MISSING_CODES = (-9999.0, -999.0, -7999.0, 7999.0)

_TOA5_HEADER_LINES = 4
_TIMESTAMP = "TIMESTAMP"
_RECORD_UNITS = "RN"


class AWSFormatError(ValueError):
    """A file that is not a readable TOA5 logger file; the message names the file and line."""


def read_aws_logger(path: str | Path, *, missing_codes: tuple[float, ...] = MISSING_CODES) -> xr.Dataset:
    """Read a Campbell Scientific TOA5 logger file (PROMICE / GC-Net raw data).

    TOA5 layout: line 1 ``"TOA5",station,logger model,serial,OS,program,signature,table``;
    line 2 column names; line 3 units; line 4 processing (``Smp``, ``Avg``, ``WVc``, ...);
    then one row per record starting with a quoted ``"YYYY-MM-DD HH:MM:SS"`` timestamp.
    Campbell loggers stamp a record at the *end* of its averaging interval; the
    PROMICE loggers run on UTC.

    Parameters
    ----------
    path
        The TOA5 text file.
    missing_codes
        Numeric values read as missing (NaN) in every numeric column except record
        counters (units ``RN``); the strings in :data:`MISSING_STRINGS` are always missing.

    Returns
    -------
    xr.Dataset
        Dim ``time`` (``datetime64[ns]``, UTC, sorted, the ``TIMESTAMP`` column). One
        float64 variable per numeric column with ``attrs["units"]`` (the units row,
        omitted where empty) and ``attrs["processing"]``. A column with any value that
        is neither a number nor a missing string (the PROMICE GPS strings such as
        ``"NH7954.65402"``) is kept as a string variable, missing values as ``""``,
        and listed in ``attrs["string_columns"]``. Dataset attrs: ``station_name``,
        ``logger_model``, ``logger_serial``, ``logger_os``, ``logger_program``,
        ``program_signature``, ``table_name``, ``source_file``, ``file_format``,
        ``n_duplicate_rows_dropped`` (exact duplicate rows, dropped),
        ``n_rows_out_of_order`` (rows whose timestamp is earlier than the previous
        row's in the file; the rows are sorted by time) and ``missing_codes``.

    Raises
    ------
    AWSFormatError
        Naming the file and line: not TOA5 (e.g. the headerless PROMICE
        satellite-transmitted files, whose column names are not in the file, are not
        supported), header rows of different lengths, a row with the wrong number of
        fields, an unreadable timestamp, no data rows, or one timestamp with two
        different records.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8", errors="replace") as stream:
        reader = csv.reader(stream)
        header = []
        for _ in range(_TOA5_HEADER_LINES):
            row = next(reader, None)
            if row is None:
                raise AWSFormatError(f"{path}: line {reader.line_num + 1}: ends inside the 4 TOA5 header lines")
            header.append(row)
            if len(header) == 1 and (not row or row[0] != "TOA5"):
                found = ",".join(row)[:60]
                raise AWSFormatError(
                    f"{path}: line 1: not a Campbell TOA5 file (expected '\"TOA5\",station,...', found {found!r}); "
                    "headerless files such as PROMICE satellite-transmitted records are not supported"
                )
        info, names, units, processing = header
        for line, row in ((3, units), (4, processing)):
            if len(row) != len(names):
                raise AWSFormatError(f"{path}: line {line}: {len(row)} fields but line 2 names {len(names)} columns")
        if names[0] != _TIMESTAMP:
            raise AWSFormatError(f"{path}: line 2: the first column is {names[0]!r}, expected {_TIMESTAMP!r}")
        rows, lines = [], []
        for row in reader:
            if not row:
                continue
            if len(row) != len(names):
                raise AWSFormatError(f"{path}: line {reader.line_num}: {len(row)} fields, expected {len(names)}")
            rows.append(row)
            lines.append(reader.line_num)
    if not rows:
        raise AWSFormatError(f"{path}: no data rows after the 4 TOA5 header lines")

    table = pd.DataFrame(rows, columns=names)
    table["_line"] = lines
    time = pd.to_datetime(table[_TIMESTAMP], format="ISO8601", errors="coerce")
    if time.isna().any():
        bad = int(np.flatnonzero(time.isna().to_numpy())[0])
        raise AWSFormatError(f"{path}: line {lines[bad]}: unreadable timestamp {table[_TIMESTAMP].iloc[bad]!r}")
    table["_time"] = time
    n_out_of_order = int((time.diff() < pd.Timedelta(0)).sum())
    table = table.sort_values("_time", kind="stable")
    duplicated = table.duplicated(subset=names, keep="first")
    table = table[~duplicated.to_numpy()]
    clash = table["_time"].duplicated(keep=False).to_numpy()
    if clash.any():
        clash_lines = ", ".join(str(n) for n in table["_line"].to_numpy()[clash][:4])
        raise AWSFormatError(f"{path}: lines {clash_lines}: different records with the same timestamp")

    data_vars = {}
    string_columns = []
    for name, unit, proc in zip(names[1:], units[1:], processing[1:], strict=True):
        text = table[name]
        missing = text.isin(MISSING_STRINGS).to_numpy()
        values = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype=np.float64)
        attrs = {"units": unit, "processing": proc} if unit else {"processing": proc}
        if np.isnan(values[~missing]).any():
            data_vars[name] = (cv.TIME, np.where(missing, "", text.to_numpy()).astype(str), attrs)
            string_columns.append(name)
            continue
        if unit != _RECORD_UNITS:
            values[np.isin(values, missing_codes)] = np.nan
        data_vars[name] = (cv.TIME, values, attrs)
    ds = xr.Dataset(data_vars, coords={cv.TIME: table["_time"].to_numpy().astype("datetime64[ns]")})
    ds[cv.TIME].attrs = {"long_name": "logger timestamp (end of the averaging interval)", "timezone": "UTC"}
    keys = ("file_format", "station_name", "logger_model", "logger_serial", "logger_os", "logger_program", "program_signature", "table_name")
    ds.attrs = dict(zip(keys, info, strict=False))
    ds.attrs.update(source_file=str(path), string_columns=string_columns, n_duplicate_rows_dropped=int(duplicated.sum()),
                    n_rows_out_of_order=n_out_of_order, missing_codes=list(missing_codes), **{cv.ATTR_VERSION: cryocube.__version__})
    return ds


# --------------------------------------------------------------------------
# Melt days from air temperature
# --------------------------------------------------------------------------

#: Daily melt rules of :func:`aws_melt_days`.
MELT_METHODS = ("max", "mean", "pdd")

#: Default minimum positive-degree-day sum (°C·day) of a melt day for ``method="pdd"``:
#: 0.1 °C·d = 2.4 °C·h, about 0.3-0.8 mm w.e. of melt at snow degree-day factors of
#: 3-8 mm w.e. (°C·d)^-1 (Braithwaite 1995, J. Glaciol. 41(137)).
PDD_MIN_C_DAYS = 0.1

_CELSIUS = frozenset({"c", "degc", "°c", "deg c", "degrees c", "celsius", "degree_celsius", "degrees_celsius"})
_KELVIN = frozenset({"k", "kelvin"})
_ZERO_CELSIUS_K = 273.15
_MAX_PLAUSIBLE_C = 100.0


def melt_day_kernel(
    temperature_c: np.ndarray,
    day: np.ndarray,
    n_days: int,
    samples_per_day: float,
    *,
    method: str = "max",
    threshold_c: float = 0.0,
    min_coverage: float = 0.75,
    pdd_min_c_days: float = PDD_MIN_C_DAYS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Daily melt flags from sub-daily air temperatures (pure numpy).

    With ``T_i`` the valid (finite) samples of a day and ``N`` their number:

    - ``"max"``: melt when ``max_i T_i > threshold_c``;
    - ``"mean"``: melt when ``mean_i T_i > threshold_c``;
    - ``"pdd"``: melt when ``PDD = mean_i max(T_i - threshold_c, 0) × 1 day > pdd_min_c_days``,
      the positive-degree-day sum (°C·d) of the day; with full coverage it equals
      ``Σ_i max(T_i - threshold_c, 0) Δt``, with gaps it is the coverage-corrected sum.

    A day is unknown (NaN) when ``N / samples_per_day < min_coverage``.

    Parameters
    ----------
    temperature_c
        Air temperature (°C), samples along the last axis; NaN = missing.
    day
        Integer day index (0 .. n_days - 1) of each sample, length of the last axis.
    n_days
        Number of output days.
    samples_per_day
        Expected samples per day (e.g. 24 for hourly data).
    method, threshold_c, min_coverage, pdd_min_c_days
        As above; ``threshold_c`` in °C, ``pdd_min_c_days`` in °C·day.

    Returns
    -------
    melt, statistic, coverage
        Arrays of shape ``(..., n_days)``: melt as float (1 melt, 0 no melt, NaN
        unknown); the day's statistic (max or mean in °C, PDD in °C·d; NaN without
        samples); coverage ``min(N / samples_per_day, 1)``.
    """
    if method not in MELT_METHODS:
        raise ValueError(f"method must be one of {MELT_METHODS}, got {method!r}")
    temperature_c = np.asarray(temperature_c, dtype=np.float64)
    day = np.asarray(day, dtype=np.intp)
    lead = temperature_c.shape[:-1]
    values = temperature_c.reshape(-1, temperature_c.shape[-1])
    rows, cols = np.nonzero(np.isfinite(values))
    days = day[cols]
    valid = values[rows, cols]
    if valid.size and valid.max() > _MAX_PLAUSIBLE_C:
        raise ValueError(f"air temperature up to {valid.max():.1f} °C: implausible; kelvin without units='K'?")
    count = np.zeros((values.shape[0], n_days))
    np.add.at(count, (rows, days), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "max":
            statistic = np.full(count.shape, -np.inf)
            np.maximum.at(statistic, (rows, days), valid)
            melt = statistic > threshold_c
        else:
            excess = valid if method == "mean" else np.maximum(valid - threshold_c, 0.0)
            total = np.zeros(count.shape)
            np.add.at(total, (rows, days), excess)
            statistic = total / count
            melt = statistic > (threshold_c if method == "mean" else pdd_min_c_days)
    statistic = np.where(count > 0, statistic, np.nan)
    coverage = np.minimum(count / samples_per_day, 1.0)
    flags = np.where((coverage >= min_coverage) & (count > 0), melt.astype(np.float64), np.nan)
    shape = (*lead, n_days)
    return flags.reshape(shape), statistic.reshape(shape), coverage.reshape(shape)


def aws_melt_days(
    temperature: xr.DataArray,
    *,
    method: str = "max",
    threshold_c: float = 0.0,
    min_coverage: float = 0.75,
    pdd_min_c_days: float = PDD_MIN_C_DAYS,
    sample_interval: str | pd.Timedelta | None = None,
) -> xr.DataArray:
    """Daily (UTC) melt flag from a station's air-temperature series.

    Rules (see :func:`melt_day_kernel`): ``"max"`` daily maximum > ``threshold_c``
    (the default; any hour above freezing), ``"mean"`` daily mean > ``threshold_c``,
    ``"pdd"`` positive-degree-day sum above ``threshold_c`` > ``pdd_min_c_days``.
    Samples are assigned to the UTC day of their timestamp; for Campbell
    end-of-interval averages the 00:00 sample mostly covers the previous day (one
    sample in 24 for hourly data).

    Parameters
    ----------
    temperature
        Air temperature on ``time`` (e.g. ``Temperature_Avg`` of
        :func:`read_aws_logger`), other dims (stations) allowed. ``attrs["units"]``
        ``"C"``/``"degC"``/... is used as is, ``"K"`` is converted to °C, no units
        means °C (values above 100 are refused as likely kelvin), other units raise.
    method
        ``"max"``, ``"mean"`` or ``"pdd"``.
    threshold_c
        Temperature threshold (°C); the base temperature of the PDD sum.
    min_coverage
        Minimum fraction (0-1] of the expected samples a day needs; below it the day
        is NaN (unknown), not "no melt".
    pdd_min_c_days
        Minimum PDD sum (°C·day) of a melt day, only for ``method="pdd"``
        (default :data:`PDD_MIN_C_DAYS`).
    sample_interval
        The logging interval (e.g. ``"1h"``) that sets the expected samples per
        day; default: the median time step of the series.

    Returns
    -------
    xr.DataArray
        Float melt flag (1 melt, 0 no melt, NaN unknown; float rather than boolean
        so that unknown days stay unknown) on a daily ``time`` (00:00 UTC of each day
        from the first to the last sample's day), with coords ``coverage`` (fraction
        of expected samples) and the day's statistic (``daily_max`` / ``daily_mean``
        in °C, ``pdd`` in °C·day). Attrs state the rule and parameters. Lazy for
        dask inputs (``time`` becomes one chunk).
    """
    if cv.TIME not in temperature.dims:
        raise ValueError(f"aws_melt_days: temperature {temperature.name!r} has no {cv.TIME!r} dim (dims {temperature.dims})")
    if not 0.0 < min_coverage <= 1.0:
        raise ValueError(f"aws_melt_days: min_coverage must be in (0, 1], got {min_coverage}")
    if method not in MELT_METHODS:
        raise ValueError(f"aws_melt_days: method must be one of {MELT_METHODS}, got {method!r}")
    units = str(temperature.attrs.get("units", "C")).strip()
    if units.lower() in _KELVIN:
        temperature = temperature - _ZERO_CELSIUS_K
    elif units.lower() not in _CELSIUS:
        raise ValueError(f"aws_melt_days: temperature {temperature.name!r} has units {units!r}; expected °C ('C', 'degC') or 'K'")
    times = pd.DatetimeIndex(temperature[cv.TIME].values)
    if times.hasnans or len(times) == 0:
        raise ValueError(f"aws_melt_days: temperature {temperature.name!r} has an empty or NaT {cv.TIME!r} coordinate")
    if sample_interval is None:
        if len(times) < 2:
            raise ValueError("aws_melt_days: one sample only; pass sample_interval")
        step = pd.Series(times).sort_values().diff().median()
    else:
        step = pd.Timedelta(sample_interval)
    if not step > pd.Timedelta(0):
        raise ValueError(f"aws_melt_days: the sample interval must be positive, got {step} (duplicated times?)")
    samples_per_day = pd.Timedelta("1D") / step
    first = times.min().floor("D")
    days = pd.date_range(first, times.max().floor("D"), freq="D")
    day = ((times.floor("D") - first) // pd.Timedelta("1D")).to_numpy()
    statistic_name = {"max": "daily_max", "mean": "daily_mean", "pdd": "pdd"}[method]

    flags, statistic, coverage = xr.apply_ufunc(
        melt_day_kernel, temperature, kwargs={"day": day, "n_days": len(days), "samples_per_day": samples_per_day, "method": method,
                                              "threshold_c": threshold_c, "min_coverage": min_coverage, "pdd_min_c_days": pdd_min_c_days},
        input_core_dims=[[cv.TIME]], output_core_dims=[["_day"]] * 3, exclude_dims={cv.TIME}, dask="parallelized",
        output_dtypes=[np.float64] * 3, dask_gufunc_kwargs={"output_sizes": {"_day": len(days)}, "allow_rechunk": True},
    )
    rule = {"max": f"daily maximum air temperature > {threshold_c} °C",
            "mean": f"daily mean air temperature > {threshold_c} °C",
            "pdd": f"positive-degree-day sum above {threshold_c} °C > {pdd_min_c_days} °C·day"}[method]
    out = flags.rename(_day=cv.TIME).assign_coords({cv.TIME: days.to_numpy().astype("datetime64[ns]")})
    out = out.assign_coords(
        coverage=(out.dims, coverage.data, {"units": "1", "long_name": "fraction of the expected samples present"}),
        **{statistic_name: (out.dims, statistic.data, {"units": "degC day" if method == "pdd" else "degC"})},
    )
    out.name = "aws_melt"
    out.attrs = {"units": "1", "long_name": "AWS melt day (1 melt, 0 no melt, NaN unknown)",
                 "rule": f"melt when {rule} (UTC days); NaN when fewer than {min_coverage:.0%} of the expected {samples_per_day:g} samples",
                 "method": method, "threshold_c": threshold_c, "min_coverage": min_coverage, "samples_per_day": samples_per_day,
                 "source_variable": str(temperature.name), cv.ATTR_VERSION: cryocube.__version__}
    if method == "pdd":
        out.attrs["pdd_min_c_days"] = pdd_min_c_days
    return out


# --------------------------------------------------------------------------
# Validation of melt maps
# --------------------------------------------------------------------------


def confusion_kappa(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Confusion table, overall accuracy and Cohen's kappa of two binary series (pure numpy).

    Positive = melt. With ``TP`` (pred melt, truth melt), ``FP`` (pred melt, truth
    not), ``FN`` (pred not, truth melt), ``TN`` (both not) and ``n`` their sum:

    - overall accuracy ``p_o = (TP + TN) / n``;
    - expected (chance) agreement
      ``p_e = [(TP + FN)(TP + FP) + (FP + TN)(FN + TN)] / n²``;
    - Cohen's kappa ``κ = (p_o - p_e) / (1 - p_e)`` (Cohen 1960, Educ. Psychol.
      Meas. 20(1)). When ``p_e = 1`` (both series constant and equal) kappa is
      undefined and returned as NaN.

    Parameters
    ----------
    pred, truth
        Same-length boolean (or 0/1) arrays without missing values.

    Returns
    -------
    table, accuracy, kappa
        ``table = [[TP, FN], [FP, TN]]`` (rows: truth melt / no melt; columns:
        predicted melt / no melt), int64; accuracy and kappa as floats.
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape or pred.ndim != 1:
        raise ValueError(f"confusion_kappa: pred {pred.shape} and truth {truth.shape} must be 1-D of the same length")
    if pred.size == 0:
        raise ValueError("confusion_kappa: no samples")
    for name, values in (("pred", pred), ("truth", truth)):
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"confusion_kappa: {name} must hold only 0/1 (or booleans), without NaN")
    pred = pred.astype(bool)
    truth = truth.astype(bool)
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    tn = int(np.sum(~pred & ~truth))
    n = pred.size
    accuracy = (tp + tn) / n
    expected = ((tp + fn) * (tp + fp) + (fp + tn) * (fn + tn)) / n**2
    kappa = float("nan") if expected == 1.0 else (accuracy - expected) / (1.0 - expected)
    return np.array([[tp, fn], [fp, tn]], dtype=np.int64), float(accuracy), float(kappa)


@dataclass(frozen=True)
class MeltValidation:
    """Agreement of per-scene melt flags with AWS melt days (positive = melt).

    Attributes
    ----------
    tp, fp, fn, tn
        Scenes with melt in both / melt map only / AWS only / neither.
    accuracy
        Overall accuracy ``(TP + TN) / n_used``.
    kappa
        Cohen's kappa (:func:`confusion_kappa`); NaN when chance agreement is 1.
    n_used
        Scenes compared.
    n_dropped_aws
        Scenes whose AWS day is unknown (NaN, or outside the AWS series).
    n_dropped_melt
        Scenes with a known AWS day but an unknown melt flag.
    scenes
        One row per scene: ``time``, ``day``, ``melt`` (map), ``aws`` (truth, NaN
        unknown) and ``used``.
    """

    tp: int
    fp: int
    fn: int
    tn: int
    accuracy: float
    kappa: float
    n_used: int
    n_dropped_aws: int
    n_dropped_melt: int
    scenes: pd.DataFrame = field(compare=False, repr=False)

    @property
    def n_dropped(self) -> int:
        """Scenes not compared (``n_dropped_aws + n_dropped_melt``)."""
        return self.n_dropped_aws + self.n_dropped_melt

    @property
    def table(self) -> np.ndarray:
        """``[[TP, FN], [FP, TN]]``: rows AWS melt / no melt, columns map melt / no melt."""
        return np.array([[self.tp, self.fn], [self.fp, self.tn]], dtype=np.int64)


def validate_melt(
    melt: xr.DataArray | xr.Dataset,
    aws_melt: xr.DataArray,
    *,
    x: float | None = None,
    y: float | None = None,
    method: str = "nearest",
    window_px: int = 1,
) -> MeltValidation:
    """Compare melt flags from a melt map with AWS melt days at the station.

    Each scene is matched to the AWS day (UTC) containing its acquisition time.
    Scenes whose AWS day is unknown or whose melt flag is unknown are dropped and
    counted; the rest give the confusion table, the overall accuracy and Cohen's
    kappa of :func:`confusion_kappa`.

    Parameters
    ----------
    melt
        Melt flags (bool, 0/1 float with NaN = unknown, or the int8 flags of
        :func:`cryocube.detect_melt` (-1 = unknown), or its output Dataset), either per scene on
        ``time`` only (already at the station), or a ``(time, y, x)`` cube sampled at
        ``(x, y)``.
    aws_melt
        Daily AWS melt flags on ``time`` (1 / 0 / NaN), e.g. from :func:`aws_melt_days`.
    x, y
        Station position in the cube's coordinate units (e.g. metres of EPSG:3413);
        required for a cube, refused for a per-scene series.
    method
        Sampling of the cube: ``"nearest"`` pixel (the only one; binary flags are
        not interpolated).
    window_px
        Odd window size (pixels) around the nearest pixel; above 1 the flag is the
        majority of the window's known pixels (a tie or no known pixel: unknown).
        The window is clipped at the cube's edges.

    Returns
    -------
    MeltValidation
        Computes the sampled pixels of ``melt``.

    Raises
    ------
    ValueError
        No ``time`` dim, a cube without ``x``/``y``, a position outside the cube, an
        unknown method or even window, melt values other than 0/1/NaN, no scene
        within the AWS period, or no scene with both flags known.
    """
    if isinstance(melt, xr.Dataset):  # the output of detect_melt
        melt = melt["melt"]
    if melt.dtype == np.int8:  # detect_melt flags: -1 unknown, 0 dry, 1 melt
        melt = melt.where(melt >= 0).astype(np.float64)
    for name, da in (("melt", melt), ("aws_melt", aws_melt)):
        if cv.TIME not in da.dims:
            raise ValueError(f"validate_melt: {name} has no {cv.TIME!r} dim (dims {da.dims})")
    if aws_melt.dims != (cv.TIME,):
        raise ValueError(f"validate_melt: aws_melt must be 1-D on {cv.TIME!r}, got dims {aws_melt.dims}")
    if method != "nearest":
        raise ValueError(f"validate_melt: method must be 'nearest', got {method!r}")
    if melt.dims == (cv.TIME,):
        if x is not None or y is not None:
            raise ValueError("validate_melt: x/y given but melt is a per-scene series on time (no y, x dims)")
        flags = _checked_flags(melt.values, melt.name)
    elif set(melt.dims) == {cv.TIME, cv.Y, cv.X}:
        flags = _sample_station(melt, x, y, window_px)
    else:
        raise ValueError(f"validate_melt: melt must have dims (time,) or (time, y, x), got {melt.dims}")

    scene_days = pd.DatetimeIndex(melt[cv.TIME].values).floor("D")
    aws_days = pd.DatetimeIndex(aws_melt[cv.TIME].values).floor("D")
    if aws_days.has_duplicates:
        raise ValueError(f"validate_melt: aws_melt {aws_melt.name!r} has more than one value for a day")
    if not ((scene_days >= aws_days.min()) & (scene_days <= aws_days.max())).any():
        raise ValueError(f"validate_melt: no overlap in time: scenes {scene_days.min().date()}..{scene_days.max().date()}, "
                         f"AWS days {aws_days.min().date()}..{aws_days.max().date()}")
    index = aws_days.get_indexer(scene_days)
    aws_values = aws_melt.values.astype(np.float64)
    truth = np.where(index >= 0, aws_values[index], np.nan)
    known_aws = np.isfinite(truth)
    used = known_aws & np.isfinite(flags)
    if not used.any():
        raise ValueError("validate_melt: no scene has both a known melt flag and a known AWS day")
    table, accuracy, kappa = confusion_kappa(flags[used], truth[used])
    scenes = pd.DataFrame({"time": melt[cv.TIME].values, "day": scene_days, "melt": flags, "aws": truth, "used": used})
    return MeltValidation(tp=int(table[0, 0]), fp=int(table[1, 0]), fn=int(table[0, 1]), tn=int(table[1, 1]),
                          accuracy=accuracy, kappa=kappa, n_used=int(used.sum()), n_dropped_aws=int((~known_aws).sum()),
                          n_dropped_melt=int((known_aws & ~np.isfinite(flags)).sum()), scenes=scenes)


def _sample_station(melt: xr.DataArray, x: float | None, y: float | None, window_px: int) -> np.ndarray:
    """Per-scene melt flag (1/0/NaN) at ``(x, y)``: nearest pixel, or the majority of a window."""
    if x is None or y is None:
        raise ValueError("validate_melt: melt is a (time, y, x) cube; give the station position x and y")
    if window_px < 1 or window_px % 2 == 0:
        raise ValueError(f"validate_melt: window_px must be a positive odd integer, got {window_px}")
    centre = {}
    for dim, value in ((cv.X, x), (cv.Y, y)):
        coords = melt[dim].values.astype(np.float64)
        half = abs(coords[1] - coords[0]) / 2 if coords.size > 1 else 0.0
        if not coords.min() - half <= value <= coords.max() + half:
            raise ValueError(f"validate_melt: station {dim}={value} is outside the cube "
                             f"({dim} from {coords.min() - half} to {coords.max() + half})")
        centre[dim] = int(np.argmin(np.abs(coords - value)))
    r = window_px // 2
    window = melt.isel({dim: slice(max(i - r, 0), i + r + 1) for dim, i in centre.items()})
    values = _checked_flags(window.transpose(cv.TIME, cv.Y, cv.X).values, melt.name).reshape(window.sizes[cv.TIME], -1)
    known = np.isfinite(values).sum(axis=1)
    melting = np.nansum(values, axis=1)
    return np.where((known == 0) | (2 * melting == known), np.nan, (2 * melting > known).astype(np.float64))


def _checked_flags(values: np.ndarray, name: object) -> np.ndarray:
    """``values`` as float64, refusing anything but 0, 1 and NaN."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isin(values[np.isfinite(values)], (0.0, 1.0)).all() or np.isinf(values).any():
        raise ValueError(f"validate_melt: melt {name!r} must hold 0/1 (or booleans) with NaN = unknown")
    return values
