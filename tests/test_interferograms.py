"""open_interferograms: the real GAMMA/PyRate GeoTIFF stack, file-name dates, bad input, Zarr round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cryocube.interferograms import open_interferograms, read_gamma_par
from cryocube.store import write_product
from cryocube.testing import raise_if_dask_computes

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pyrate_cropA_s1_insar_stack"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason="shared real-data folder absent")


def test_real_stack():
    with raise_if_dask_computes():
        ifgs = open_interferograms(DATA / "geotiffs", headers=DATA / "headers", chunks=32)
    assert dict(ifgs.sizes) == {"pair": 30, "y": 60, "x": 100}
    assert ifgs["unwrapped_phase"].chunks == ((30,), (32, 28), (32, 32, 32, 4))
    assert len(np.unique(np.concatenate([ifgs["date1"].values, ifgs["date2"].values]))) == 13
    assert str(ifgs["date1"].values[0])[:10] == "2018-01-06" and str(ifgs["date2"].values[0])[:10] == "2018-01-30"
    assert (ifgs["dt_days"].values > 0).all()
    assert ifgs.attrs["wavelength_m"] == pytest.approx(0.0555, abs=1e-4)
    assert ifgs.attrs["incidence_deg"] == pytest.approx(39.70, abs=0.01)
    assert ifgs.attrs["n_looks"] == 8 and ifgs.attrs["heading_deg"] == pytest.approx(-12.27, abs=0.01)
    assert ifgs.rio.crs.to_epsg() == 4326
    # nodata 0 -> NaN, values untouched elsewhere (against a plain rasterio read)
    path = DATA / "geotiffs" / "cropA_20180106-20180130_VV_8rlks_eqa_unw.tif"
    with rasterio.open(path) as src:
        raw = src.read(1)
    got = ifgs["unwrapped_phase"].isel(pair=0).values
    np.testing.assert_array_equal(np.isnan(got), raw == 0)
    np.testing.assert_array_equal(got[raw != 0], raw[raw != 0])
    coh = ifgs["coherence"].values
    assert np.nanmin(coh) > 0 and np.nanmax(coh) <= 1


def test_gamma_par_reader():
    par = read_gamma_par(DATA / "headers" / "r20180106_VV_8rlks_mli.par")
    assert par["range_looks"] == "8" and par["radar_frequency"].startswith("5.405")


def _write(path: Path, value: np.ndarray, tags: dict | None = None, origin: float = 0.0) -> Path:
    with rasterio.open(path, "w", driver="GTiff", height=value.shape[0], width=value.shape[1], count=1, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(origin, 100.0, 10.0, 10.0), nodata=0.0) as dst:
        dst.write(value.astype(np.float32), 1)
        if tags:
            dst.update_tags(**tags)
    return path


def test_dates_from_file_names_and_zarr_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    for d1, d2 in (("20200101", "20200113"), ("20200113", "20200125"), ("20200101", "20200125")):
        _write(tmp_path / f"s1_{d1}-{d2}_unw.tif", rng.uniform(1, 2, (6, 7)))
        _write(tmp_path / f"s1_{d1}-{d2}_cc.tif", rng.uniform(0.2, 0.9, (6, 7)))
    ifgs = open_interferograms(str(tmp_path / "*.tif"), wavelength_m=0.0555)
    assert [str(d)[:10] for d in ifgs["date2"].values] == ["2020-01-13", "2020-01-25", "2020-01-25"]
    np.testing.assert_array_equal(ifgs["dt_days"].values, [12, 24, 12])
    write_product(ifgs, tmp_path / "ifgs.zarr")
    back = open_interferograms(tmp_path / "ifgs.zarr", chunks=3)
    assert back["unwrapped_phase"].chunks == ((3,), (3, 3), (3, 3, 1))
    np.testing.assert_array_equal(back["unwrapped_phase"].values, ifgs["unwrapped_phase"].values)
    assert back.attrs["wavelength_m"] == 0.0555


def test_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        open_interferograms(tmp_path / "nowhere")
    _write(tmp_path / "a_20200101-20200113_unw.tif", np.ones((4, 4)))
    _write(tmp_path / "a_20200113-20200125_unw.tif", np.ones((4, 4)), origin=50.0)
    with pytest.raises(ValueError, match="another grid"):
        open_interferograms(tmp_path)
    (tmp_path / "a_20200113-20200125_unw.tif").unlink()
    _write(tmp_path / "a_20200113-20200125_unw.tif", np.ones((4, 4)))
    _write(tmp_path / "a_20200101-20200113_cc.tif", np.ones((4, 4)))
    with pytest.raises(ValueError, match="no coherence file"):
        open_interferograms(tmp_path)
    _write(tmp_path / "b_unw.tif", np.ones((4, 4)))
    with pytest.raises(ValueError, match="b_unw.tif"):
        open_interferograms(tmp_path)
    with pytest.raises(ValueError, match="chunks"):
        open_interferograms(DATA / "geotiffs", chunks={"time": 5})


def test_stac_items_of_the_real_stack(tmp_path):
    """A static STAC catalog of the stack (one item per pair), searched and opened, equals the folder read."""
    import pystac

    from cryocube.catalog import search
    from cryocube.interferograms import interferogram_items

    items = interferogram_items(DATA / "geotiffs", center_frequency_ghz=5.405)
    assert len(items) == 30 and {"unwrapped_phase", "coherence"} <= set(items[0].assets)
    catalog = pystac.Catalog("mexico-ifgs", "PyRate crop A interferograms")
    catalog.add_items(items)
    catalog.normalize_and_save(str(tmp_path / "stac"), pystac.CatalogType.SELF_CONTAINED)
    found = search(tmp_path / "stac" / "catalog.json", datetime="2018-01-01/2018-04-30")
    from_items = open_interferograms(found, chunks=32)
    from_files = open_interferograms(DATA / "geotiffs", chunks=32)
    overlapping = from_files.date1.values <= np.datetime64("2018-04-30T23:59:59")  # STAC search: time spans overlap
    assert 0 < overlapping.sum() < 30 and from_items.sizes["pair"] == overlapping.sum()
    sel = from_files.sel(pair=np.isin(from_files.date1.values, from_items.date1.values)
                         & np.isin(from_files.date2.values, from_items.date2.values))
    np.testing.assert_array_equal(from_items["date1"].values, sel["date1"].values)
    np.testing.assert_array_equal(from_items["date2"].values, sel["date2"].values)
    np.testing.assert_array_equal(from_items["unwrapped_phase"].values, sel["unwrapped_phase"].values)
    np.testing.assert_array_equal(from_items["coherence"].values, sel["coherence"].values)
    assert from_items.attrs["wavelength_m"] == pytest.approx(from_files.attrs["wavelength_m"], rel=1e-3)


def test_stac_items_bad_input(tmp_path):
    import pystac

    from cryocube.interferograms import interferogram_items

    items = list(interferogram_items(DATA / "geotiffs"))[:3]
    no_dates = items[0].clone()
    del no_dates.properties["end_datetime"]
    with pytest.raises(ValueError, match=r"item '20180106_20180130'.*start_datetime and end_datetime"):
        open_interferograms([no_dates, *items[1:]])
    no_phase = items[1].clone()
    del no_phase.assets["unwrapped_phase"]
    with pytest.raises(ValueError, match=r"has no unwrapped-phase asset.*\['coherence'\]"):
        open_interferograms([items[0], no_phase])
    gone = items[2].clone()
    gone.assets["unwrapped_phase"] = pystac.Asset(str(tmp_path / "gone_unw.tif"))
    with pytest.raises(FileNotFoundError, match="gone_unw.tif"):
        open_interferograms([items[0], gone])
