"""AWS logger parsing, melt days and melt-map validation.

Real data: the PROMICE / GC-Net raw logger files in ``../shared/data/promice_aws_raw_logger``
(read in place, never copied). Expected values marked "hand-checked" were read from
the raw text with grep/awk, independently of :func:`read_aws_logger`.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cryocube.aws import (
    AWSFormatError,
    aws_melt_days,
    confusion_kappa,
    read_aws_logger,
    validate_melt,
)
from cryocube.plot import aws_melt_plot
from cryocube.testing import raise_if_dask_computes

AWS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "promice_aws_raw_logger"
KPC_U = "test_raw_SlimTableMem1.txt"

needs_data = pytest.mark.skipif(not AWS_DIR.is_dir(), reason=f"PROMICE logger test data not found at {AWS_DIR}")

HEADER = ('"TOA5","STN","CR1000","1","OS","CPU:prog.CR1","1","Table"\n'
          '"TIMESTAMP","RECORD","Temperature_Avg","Latitude"\n'
          '"TS","RN","C",""\n'
          '"","","Avg","Smp"\n')


@cache
def real(name: str) -> xr.Dataset:
    """A real logger file, parsed once per test session (tests must not modify it)."""
    return read_aws_logger(AWS_DIR / name)


@pytest.fixture(scope="module")
def kpc_u() -> xr.Dataset:
    if not AWS_DIR.is_dir():
        pytest.skip(f"PROMICE logger test data not found at {AWS_DIR}")
    return real(KPC_U)


# --------------------------------------------------------------------------
# Parsing the real files
# --------------------------------------------------------------------------

# (file, data rows = `wc -l` minus the 4 header lines, cadence, station, table, first time)
REAL_FILES = [
    ("test_raw1.txt", 4468 - 4, "10min", "E10212", "TableMem", "2016-08-01 00:00"),
    (KPC_U, 1155 - 4, "1h", "CR1000_kpc_u", "SlimTableMem", "2019-05-26 12:00"),
    ("test_raw_DataTable2.txt", 11167 - 4, "10min", "31346", "DataTable10min", "2022-05-16 12:30"),
]


@needs_data
@pytest.mark.parametrize(("name", "rows", "cadence", "station", "table", "first"), REAL_FILES)
def test_real_files_parse(name: str, rows: int, cadence: str, station: str, table: str, first: str) -> None:
    ds = read_aws_logger(AWS_DIR / name)  # uncached: the parse itself is under test
    time = pd.DatetimeIndex(ds.time.values)
    assert ds.sizes["time"] == rows
    assert ds.time.dtype == np.dtype("datetime64[ns]") and time.is_monotonic_increasing and time.is_unique
    assert time[0] == pd.Timestamp(first)
    steps = time.to_series().diff().dropna().value_counts()
    assert steps.index[0] == pd.Timedelta(cadence)
    assert (ds.attrs["station_name"], ds.attrs["table_name"]) == (station, table)
    assert ds.attrs["source_file"] == str(AWS_DIR / name)
    assert ds.attrs["n_duplicate_rows_dropped"] == 0 and ds.attrs["n_rows_out_of_order"] == 0
    assert all(ds[v].dtype == np.float64 for v in ds.data_vars if v not in ds.attrs["string_columns"])


@needs_data
def test_cadence_and_gaps() -> None:
    # KPC_U and KPC_L are gap-free (1151 = 47 days * 24 + 23 hours; 4464 = 31 days * 144);
    # the GC-Net bench test has three gaps (hand-checked: 2022-05-20 07:20 -> 11:20 is one).
    assert (np.diff(real(KPC_U).time.values) == np.timedelta64(1, "h")).all()
    assert (np.diff(real("test_raw1.txt").time.values) == np.timedelta64(10, "m")).all()
    steps = np.diff(real("test_raw_DataTable2.txt").time.values)
    assert int((steps != np.timedelta64(10, "m")).sum()) == 3
    assert np.timedelta64(4, "h") in steps


@needs_data
def test_units_processing_and_values(kpc_u: xr.Dataset) -> None:
    t = kpc_u["Temperature_Avg"]
    assert t.attrs == {"units": "C", "processing": "Avg"}
    assert kpc_u["AirPressure_Avg"].attrs["units"] == "hPa"
    assert kpc_u["WindSpeed"].attrs == {"units": "m/s", "processing": "WVc"}
    assert "units" not in kpc_u["MinutesInYear"].attrs  # empty units field
    # first data line: "2019-05-26 12:00:00",24742,210950,913,-2.071,...
    first = kpc_u.isel(time=0)
    assert (float(first["RECORD"]), float(first["AirPressure_Avg"]), float(first["Temperature_Avg"])) == (24742, 913, -2.071)
    gc = real("test_raw_DataTable2.txt")
    assert "units" not in gc["Asp_temp_L"].attrs and gc["WindDirection_S_L"].attrs["units"] == "Deg"


@needs_data
def test_missing_value_codes_from_real_lines(kpc_u: xr.Dataset) -> None:
    # grep -n ',-999,' test_raw_SlimTableMem1.txt: 12 lines, first "2019-07-05 05:00:00",
    # -999 in column 23 (TemperatureIce3m_Avg; a failed thermistor), column 22 reads 14.39.
    at = kpc_u.sel(time="2019-07-05 05:00")
    assert np.isnan(at["TemperatureIce3m_Avg"]) and float(at["TemperatureIce2m_Avg"]) == 14.39
    assert int(kpc_u["TemperatureIce3m_Avg"].isnull().sum()) == 12
    assert int(kpc_u["Temperature_Avg"].isnull().sum()) == 0
    # GC-Net bench test, line 550 ("2022-05-20 07:20:00"): SWUpper "NAN", TemperatureRadSensor 7999
    # (FP2 over-range); Pressure_U is "NAN" on 4006 lines (awk -F, '$4=="\"NAN\""' | wc -l).
    gc = real("test_raw_DataTable2.txt")
    at = gc.sel(time="2022-05-20 07:20")
    assert np.isnan(at["SWUpper"]) and np.isnan(at["TemperatureRadSensor"]) and float(at["Asp_temp_L"]) == 14.5
    assert int(gc["Pressure_U"].isnull().sum()) == 4006
    # ...but a record counter of 7999 (line 8002) and a real pressure of 999 hPa (line 1061) stay.
    assert float(gc["RECORD"].sel(time="2022-07-11 19:10")) == 7999
    assert float(gc["Pressure_L"].sel(time="2022-05-24 00:20")) == 999
    # KPC_L line 30 holds 3.479996 (the digits "7999" inside a real value): not missing.
    kpc_l = real("test_raw1.txt")
    assert float(kpc_l["Temperature_Avg"].sel(time="2016-08-01 04:10")) == 3.479996
    assert int(kpc_l["Temperature_Avg"].isnull().sum()) == 0


@needs_data
def test_gps_strings_kept(kpc_u: xr.Dataset) -> None:
    assert kpc_u.attrs["string_columns"] == ["TimeGPS", "Latitude", "Longitude", "GeoUnit"]
    first = kpc_u.isel(time=0)
    assert str(first["Latitude"].values) == "NH7950.09350" and str(first["Longitude"].values) == "WH02509.86150"
    assert float(first["Altitude"]) == 858.5  # quoted "858.5" is numeric
    gc = real("test_raw_DataTable2.txt")  # numeric-only GPS fields stay numbers
    assert gc.attrs["string_columns"] == [] and float(gc["Latitude"].isel(time=0)) == 5541.31076


@needs_data
def test_transmitted_file_is_refused_clearly() -> None:
    path = AWS_DIR / "test_raw_transmitted1.txt"  # blank line 1, then headerless unquoted rows
    with pytest.raises(AWSFormatError, match=r"test_raw_transmitted1\.txt: line 1: not a Campbell TOA5 file"):
        read_aws_logger(path)


# --------------------------------------------------------------------------
# Malformed and messy files
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "match"), [
    ("TIMESTAMP,T\n2019-01-01 00:00:00,1\n", r"line 1: not a Campbell TOA5 file"),
    (HEADER.replace('"","","Avg","Smp"', '"","","Avg"'), r"line 4: 3 fields but line 2 names 4 columns"),
    (HEADER + '"2019-01-01 00:00:00",1,-1.5,"NH1"\n"2019-01-01 01:00:00",2,-1.5\n', r"line 6: 3 fields, expected 4"),
    (HEADER + '"2019-13-45 00:00:00",1,-1.5,"NH1"\n', r"line 5: unreadable timestamp"),
    (HEADER, r"no data rows"),
    (HEADER[:80], r"ends inside the 4 TOA5 header lines"),
    (HEADER + '"2019-01-01 00:00:00",1,-1.5,"NH1"\n"2019-01-01 00:00:00",2,3.0,"NH1"\n', r"lines 5, 6: different records"),
])
def test_malformed_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "broken.dat"
    path.write_text(text)
    with pytest.raises(AWSFormatError, match=re.escape(str(path)) + ".*" + match):
        read_aws_logger(path)
    assert issubclass(AWSFormatError, ValueError)


def test_out_of_order_and_duplicates(tmp_path: Path) -> None:
    rows = ['"2019-01-01 02:00:00",3,2.5,"NH2"', '"2019-01-01 00:00:00",1,"NAN","NH1"',
            '"2019-01-01 01:00:00",2,-9999,""', '"2019-01-01 00:00:00",1,"NAN","NH1"']
    path = tmp_path / "messy.dat"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    ds = read_aws_logger(path)
    assert list(ds["RECORD"].values) == [1, 2, 3]
    assert np.array_equal(ds["Temperature_Avg"].values, [np.nan, np.nan, 2.5], equal_nan=True)
    assert list(ds["Latitude"].values) == ["NH1", "", "NH2"]
    assert (ds.attrs["n_duplicate_rows_dropped"], ds.attrs["n_rows_out_of_order"]) == (1, 2)


# --------------------------------------------------------------------------
# Melt days
# --------------------------------------------------------------------------

# Hand-checked at KPC_U 2019 (Temperature_Avg, column 5), e.g.
#   grep '^"2019-06-02' test_raw_SlimTableMem1.txt | cut -d, -f5 | sort -g | tail -1     -> 0.128
#   awk -F, 'NR>4{d=substr($1,2,10); n[d]++; s[d]+=$5; if($5>0) p[d]+=$5/24; ...}'       (per-day
#   count, max, mean and PDD = sum of positive hourly values / 24)
# day: (daily max °C, daily mean °C, PDD °C·d) -> expected flags (max, mean, pdd)
HAND_CHECKED = {
    "2019-05-29": ((-1.377, -3.978, 0.0), (0, 0, 0)),
    "2019-06-02": ((0.128, -4.320, 0.0053), (1, 0, 0)),  # one hour above 0 °C (17:00)
    "2019-06-08": ((1.074, -1.748, 0.1950), (1, 0, 1)),
    "2019-06-12": ((7.905, 4.031, 4.0435), (1, 1, 1)),
    "2019-06-23": ((-0.602, -2.160, 0.0), (0, 0, 0)),  # warmest hour 00:00, -0.602
    "2019-07-03": ((-0.387, -0.835, 0.0), (0, 0, 0)),
    "2019-07-06": ((1.207, 0.544, 0.6040), (1, 1, 1)),
}


@needs_data
@pytest.mark.parametrize(("method", "column", "statistic", "n_melt"), [
    ("max", 0, "daily_max", 38), ("mean", 1, "daily_mean", 20), ("pdd", 2, "pdd", 32)])
def test_melt_days_kpc_u_hand_checked(kpc_u: xr.Dataset, method: str, column: int, statistic: str, n_melt: int) -> None:
    melt = aws_melt_days(kpc_u["Temperature_Avg"], method=method)
    assert melt.sizes["time"] == 49 and melt.attrs["method"] == method and melt.attrs["samples_per_day"] == 24
    for day, (stats, flags) in HAND_CHECKED.items():
        assert float(melt.sel(time=day)) == flags[column], day
        assert float(melt[statistic].sel(time=day)) == pytest.approx(stats[column], abs=6e-4), day
    # first (12 of 24 hours) and last (11 of 24) days are unknown, not "no melt"
    assert np.isnan(melt.values[[0, -1]]).all()
    assert melt["coverage"].values[[0, -1]] == pytest.approx([12 / 24, 11 / 24])
    # melt-day counts over the 47 complete days, also from the awk table
    assert int((melt == 1).sum()) == n_melt and int((melt == 0).sum()) == 47 - n_melt


def hourly(values_by_day: list[np.ndarray], start: str = "2020-06-01") -> xr.DataArray:
    values = np.concatenate(values_by_day)
    return xr.DataArray(values, dims="time", coords={"time": pd.date_range(start, periods=values.size, freq="h")},
                        name="t_air", attrs={"units": "degC"})


def test_melt_days_coverage_gaps() -> None:
    warm = np.full(24, -5.0)
    warm[12] = 1.0  # one hour above 0 °C
    gap17 = warm.copy()
    gap17[:7] = np.nan  # 17 of 24 samples: below 75 %
    gap18 = warm.copy()
    gap18[:6] = np.nan  # 18 of 24: exactly 75 %
    hidden = warm.copy()
    hidden[10:15] = np.nan  # the warm hour missing, 19 of 24: known, "no melt"
    temperature = hourly([warm, gap17, gap18, hidden, np.full(24, np.nan), warm])
    melt = aws_melt_days(temperature)
    assert np.array_equal(melt.values, [1, np.nan, 1, 0, np.nan, 1], equal_nan=True)
    assert melt["coverage"].values == pytest.approx([1, 17 / 24, 18 / 24, 19 / 24, 0, 1])
    assert np.isnan(melt["daily_max"].values[4])
    assert np.array_equal(aws_melt_days(temperature, min_coverage=0.5).values, [1, 1, 1, 0, np.nan, 1], equal_nan=True)


def test_pdd_is_coverage_corrected_and_thresholded() -> None:
    half = np.full(24, np.nan)
    half[:12] = 2.0  # 12 of 24 hours at +2 °C -> PDD 2 °C·d when corrected for coverage
    cold = np.full(24, -1.0)
    cold[0] = 1.2  # 1.2 °C·h = 0.05 °C·d: below the default 0.1 °C·d
    melt = aws_melt_days(hourly([half, cold]), method="pdd", min_coverage=0.5)
    assert melt["pdd"].values == pytest.approx([2.0, 0.05])
    assert list(melt.values) == [1, 0]
    assert list(aws_melt_days(hourly([half, cold]), method="pdd", min_coverage=0.5, pdd_min_c_days=0.04).values) == [1, 1]
    assert melt["pdd"].attrs["units"] == "degC day" and melt.attrs["pdd_min_c_days"] == 0.1


def test_melt_days_units_and_errors() -> None:
    temperature = hourly([np.linspace(-3, 2, 24), np.linspace(-6, -1, 24)])
    expected = aws_melt_days(temperature, method="mean", threshold_c=-1.0)
    kelvin = (temperature + 273.15).assign_attrs(units="K")
    assert np.array_equal(aws_melt_days(kelvin, method="mean", threshold_c=-1.0).values, expected.values)
    with pytest.raises(ValueError, match=r"'t_air' has units 'F'"):
        aws_melt_days(temperature.assign_attrs(units="F"))
    with pytest.raises(ValueError, match="kelvin"):
        aws_melt_days(temperature + 273.15)  # arithmetic drops the units: assumed °C
    with pytest.raises(ValueError, match="method must be one of"):
        aws_melt_days(temperature, method="median")
    with pytest.raises(ValueError, match="min_coverage"):
        aws_melt_days(temperature, min_coverage=0.0)
    with pytest.raises(ValueError, match="has no 'time' dim"):
        aws_melt_days(temperature.rename(time="t"))
    # a single sample needs the interval
    one = temperature.isel(time=[0])
    with pytest.raises(ValueError, match="sample_interval"):
        aws_melt_days(one)
    assert np.isnan(aws_melt_days(one, sample_interval="1h").values).all()


def test_melt_days_lazy_and_chunk_independent() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(-1, 2, (2, 24 * 10))
    values[values > 4] = np.nan
    temperature = xr.DataArray(values, dims=("station", "time"),
                               coords={"time": pd.date_range("2020-06-01", periods=240, freq="h")}, attrs={"units": "C"})
    eager = aws_melt_days(temperature, method="pdd")
    with raise_if_dask_computes():
        lazy = aws_melt_days(temperature.chunk({"station": 1, "time": 37}), method="pdd")
    assert isinstance(lazy.data, dsa.Array)
    xr.testing.assert_identical(lazy.compute(), eager)
    assert eager.dims == ("station", "time") and eager.sizes["time"] == 10


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def table_arrays(tp: int, fn: int, fp: int, tn: int) -> tuple[np.ndarray, np.ndarray]:
    pred = np.array([1] * tp + [0] * fn + [1] * fp + [0] * tn, dtype=bool)
    truth = np.array([1] * tp + [1] * fn + [0] * fp + [0] * tn, dtype=bool)
    return pred, truth


@pytest.mark.parametrize(("cells", "accuracy", "kappa"), [
    ((20, 5, 10, 15), 0.7, 0.4),  # p_e = (25*30 + 25*20) / 50^2 = 0.5
    ((45, 15, 25, 15), 0.6, 0.06 / 0.46),  # p_e = (60*70 + 40*30) / 100^2 = 0.54
    ((0, 1, 1, 0), 0.0, -1.0),  # p_e = 0.5
    ((3, 0, 0, 2), 1.0, 1.0),
    ((4, 0, 0, 0), 1.0, np.nan),  # p_e = 1: kappa undefined
    ((0, 0, 0, 4), 1.0, np.nan),
    ((0, 3, 0, 0), 0.0, 0.0),  # p_e = 0 (pred never melts, truth always does)
])
def test_confusion_kappa_hand_tables(cells: tuple[int, int, int, int], accuracy: float, kappa: float) -> None:
    table, acc, k = confusion_kappa(*table_arrays(*cells))
    assert table.tolist() == [[cells[0], cells[1]], [cells[2], cells[3]]]
    assert acc == pytest.approx(accuracy)
    assert k == pytest.approx(kappa, nan_ok=True)


def test_confusion_kappa_errors() -> None:
    with pytest.raises(ValueError, match="no samples"):
        confusion_kappa(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="truth must hold only 0/1"):
        confusion_kappa(np.array([1.0, 0.0]), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="same length"):
        confusion_kappa(np.array([1, 0]), np.array([1]))


X = 1000.0 + 30.0 * np.arange(6)
Y = 2000.0 - 30.0 * np.arange(5)  # y decreasing, north-up
STATION = (X[2] + 4.0, Y[3] - 6.0)  # nearest pixel: (y index 3, x index 2)

# AWS melt days 2020-06-01 .. 2020-06-09 (NaN = unknown)
AWS_DAYS = [1, 1, 0, 1, 1, 0, 0, 1, np.nan]

# scene time, map flag at the station pixel; outcome against AWS_DAYS
SCENES = [
    ("2020-06-01 08:00", 1.0),  # TP
    ("2020-06-01 20:00", 1.0),  # TP (same AWS day)
    ("2020-06-02 23:59", 1.0),  # TP (still 2020-06-02)
    ("2020-06-03 00:01", 1.0),  # FP (next day, no melt)
    ("2020-06-04 10:00", 0.0),  # FN
    ("2020-06-05 10:00", 0.0),  # FN
    ("2020-06-06 10:00", 0.0),  # TN
    ("2020-06-07 10:00", 0.0),  # TN
    ("2020-06-08 10:00", np.nan),  # map unknown -> dropped (melt)
    ("2020-06-09 10:00", 1.0),  # AWS unknown -> dropped (aws)
    ("2020-07-01 10:00", 0.0),  # after the AWS period -> dropped (aws)
]


def synthetic_case() -> tuple[xr.DataArray, xr.DataArray]:
    """A (time, y, x) melt cube right at the station pixel and wrong (1 - flag; 1 where unknown) elsewhere."""
    flags = np.array([s[1] for s in SCENES])
    cube = np.broadcast_to(1.0 - np.nan_to_num(flags, nan=0.0)[:, None, None], (len(SCENES), Y.size, X.size)).copy()
    cube[:, 3, 2] = flags
    times = pd.DatetimeIndex([s[0] for s in SCENES])
    melt = xr.DataArray(cube, dims=("time", "y", "x"), coords={"time": times, "y": Y, "x": X}, name="melt")
    days = pd.date_range("2020-06-01", periods=len(AWS_DAYS), freq="D")
    return melt, xr.DataArray(AWS_DAYS, dims="time", coords={"time": days}, name="aws_melt")


def test_validate_melt_synthetic_cube() -> None:
    melt, aws = synthetic_case()
    result = validate_melt(melt, aws, x=STATION[0], y=STATION[1])
    assert (result.tp, result.fp, result.fn, result.tn) == (3, 1, 2, 2)
    assert result.table.tolist() == [[3, 2], [1, 2]]
    assert (result.n_used, result.n_dropped_aws, result.n_dropped_melt, result.n_dropped) == (8, 2, 1, 3)
    # p_o = 5/8; p_e = ((3+2)(3+1) + (1+2)(2+2)) / 8^2 = 32/64 = 0.5; kappa = 0.125/0.5
    assert result.accuracy == pytest.approx(0.625)
    assert result.kappa == pytest.approx(0.25)
    assert result.scenes["used"].sum() == 8 and len(result.scenes) == len(SCENES)
    # the per-scene series at the station gives the same answer
    series = melt.isel(y=3, x=2, drop=True)
    assert validate_melt(series, aws) == result
    assert validate_melt(series.astype(float).fillna(0).astype(bool), aws).n_dropped_melt == 0


def test_validate_melt_window_majority() -> None:
    melt, aws = synthetic_case()
    # 3x3 window: 8 neighbours wrong, centre right -> majority wrong: TP <-> FN, FP <-> TN, and
    # the unknown centre on 2020-06-08 is outvoted by 8 known "melt" neighbours (AWS melt: TP)
    result = validate_melt(melt, aws, x=STATION[0], y=STATION[1], window_px=3)
    assert (result.tp, result.fp, result.fn, result.tn) == (3, 2, 3, 1)
    assert (result.n_used, result.n_dropped_melt) == (9, 0)
    # a tie (4 melt, 4 no melt, 1 unknown) is unknown: the first 5 scenes
    tie = xr.zeros_like(melt)
    tie[:5, 2:5, 1:4] = np.array([[1, 1, 0], [1, np.nan, 0], [1, 0, 0]])
    assert validate_melt(tie, aws, x=STATION[0], y=STATION[1], window_px=3).n_dropped_melt == 5
    # the window is clipped at the cube's edge: at the corner pixel 4 pixels vote, all known
    corner = validate_melt(melt, aws, x=X[-1], y=Y[-1], window_px=3)
    assert (corner.n_used, corner.n_dropped_melt) == (9, 0)


def test_validate_melt_errors() -> None:
    melt, aws = synthetic_case()
    with pytest.raises(ValueError, match="melt has no 'time' dim"):
        validate_melt(melt.rename(time="t"), aws, x=STATION[0], y=STATION[1])
    with pytest.raises(ValueError, match="aws_melt has no 'time' dim"):
        validate_melt(melt, aws.rename(time="day"), x=STATION[0], y=STATION[1])
    with pytest.raises(ValueError, match="station x=2000.0 is outside the cube"):
        validate_melt(melt, aws, x=2000.0, y=STATION[1])
    with pytest.raises(ValueError, match="station y=.* is outside the cube"):
        validate_melt(melt, aws, x=STATION[0], y=Y[-1] - 16.0)
    with pytest.raises(ValueError, match="give the station position"):
        validate_melt(melt, aws)
    with pytest.raises(ValueError, match="window_px must be a positive odd"):
        validate_melt(melt, aws, x=STATION[0], y=STATION[1], window_px=2)
    with pytest.raises(ValueError, match="no overlap in time"):
        validate_melt(melt, aws.assign_coords(time=aws.time - np.timedelta64(400, "D")), x=STATION[0], y=STATION[1])
    with pytest.raises(ValueError, match="must hold 0/1"):
        validate_melt(melt * 0.5, aws, x=STATION[0], y=STATION[1])
    with pytest.raises(ValueError, match="method must be 'nearest'"):
        validate_melt(melt, aws, x=STATION[0], y=STATION[1], method="linear")
    with pytest.raises(ValueError, match="no scene has both"):
        validate_melt(melt * np.nan, aws, x=STATION[0], y=STATION[1])


@needs_data
def test_validate_melt_against_kpc_u(kpc_u: xr.Dataset) -> None:
    # A map that says "melt" on every scene: accuracy = share of melt days, kappa 0.
    aws = aws_melt_days(kpc_u["Temperature_Avg"], method="mean")
    scenes = pd.date_range("2019-05-26 08:00", "2019-07-13 08:00", freq="6D")  # a 6-day revisit
    melt = xr.DataArray(np.ones(len(scenes)), dims="time", coords={"time": scenes})
    result = validate_melt(melt, aws)
    days = aws.sel(time=scenes.floor("D")).values
    assert result.n_dropped_aws == int(np.isnan(days).sum()) == 2
    assert result.tp == int((days == 1).sum()) and result.fp == int((days == 0).sum()) and result.fn == result.tn == 0
    assert result.kappa == pytest.approx(0.0)


# --------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------


@needs_data
def test_aws_melt_plot(kpc_u: xr.Dataset, tmp_path: Path) -> None:
    melt = aws_melt_days(kpc_u["Temperature_Avg"], method="max")
    path = aws_melt_plot(kpc_u["Temperature_Avg"], melt, tmp_path / "plots" / "kpc_u_2019.png", title="KPC_U 2019")
    assert path.is_file() and path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
