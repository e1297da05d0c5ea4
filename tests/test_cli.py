"""The ``cryocube`` command: help text, search, cube, demo, and errors as messages."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import cryocube as cc
from cryocube.cli import build_parser, main
from tests.conftest import REPO

S1_CATALOG = REPO / "catalogs" / "greenland-s1" / "catalog.json"


def _subparsers():
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return action.choices


def test_every_option_has_help():
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"cryocube {name}: option {action.option_strings or action.dest} has no help"


def test_installed_entry_point_prints_help():
    exe = shutil.which("cryocube") or str(REPO / ".venv" / "bin" / "cryocube")
    result = subprocess.run([exe, "cube", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--bbox", "--datetime", "--assets", "--chunks", "--zarr-format", "--loader"):
        assert option in result.stdout


def test_search_filters_and_saves(tmp_path, capsys):
    out = tmp_path / "items.json"
    query = '{"sat:orbit_state": {"eq": "ascending"}}'
    assert main(["search", str(S1_CATALOG), "--datetime", "2019-06-01/2019-06-30", "--query", query, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5 item(s)" in text and "descending" not in text
    assert out.exists()


def test_cube_writes_a_store(tmp_path, capsys):
    store = tmp_path / "c.zarr"
    args = ["cube", str(S1_CATALOG), "--datetime", "2019-05-01/2019-05-13", "--assets", "hh", "--out", str(store), "--zarr-format", "2"]
    assert main(args) == 0
    assert "Completed" in capsys.readouterr().out  # the progress bar
    cube = cc.open_cube(store)
    assert cube.sizes["time"] == 4 and list(cube.data_vars) == ["hh"]
    expected = cc.build_cube(cc.search(S1_CATALOG, datetime="2019-05-01/2019-05-13"), assets=["hh"])
    np.testing.assert_array_equal(cube.hh.values, expected.hh.values)
    assert main(args) == 2  # refuses to overwrite by default
    assert "c.zarr" in capsys.readouterr().err


def test_default_is_a_local_cluster_with_a_dashboard_link(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CRYOCUBE_SCHEDULER")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    store = tmp_path / "c.zarr"
    assert main(["cube", str(S1_CATALOG), "--datetime", "2019-05-01/2019-05-13", "--assets", "hh", "--out", str(store)]) == 0
    text = capsys.readouterr().out
    assert "dask local cluster" in text and "dashboard http://" in text
    expected = cc.build_cube(cc.search(S1_CATALOG, datetime="2019-05-01/2019-05-13"), assets=["hh"])
    np.testing.assert_array_equal(cc.open_cube(store).hh.values, expected.hh.values)


@pytest.mark.parametrize(
    "argv, culprit",
    [
        (["search", "no/such/catalog.json"], "no/such/catalog.json"),
        (["cube", str(S1_CATALOG), "--assets", "vv", "--out", "x.zarr"], "'vv'"),
        (["search", str(S1_CATALOG), "--collections", "nope"], "nope"),
    ],
)
def test_errors_are_messages_naming_the_culprit(argv, culprit, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cryocube {argv[0]}: error:") and culprit in err and "Traceback" not in err


def test_demo_writes_cubes_and_quicklooks(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cryocube.cli", "demo", "--out", str(tmp_path / "demo")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "done in" in result.stdout and "s1 66 scenes, s2 15 scenes" in result.stdout
    for name in ("s1", "s2"):
        assert (tmp_path / "demo" / f"quicklook_{name}.png").stat().st_size > 10_000
        assert (tmp_path / "demo" / f"velocity_{name}.png").stat().st_size > 10_000
        assert f"[velocity_{name}]   vs simulator truth over glacier" in result.stdout
    assert cc.open_cube(tmp_path / "demo" / "s1.zarr").sizes["time"] == 66
    assert cc.open_cube(tmp_path / "demo" / "s2.zarr").sizes["time"] == 15
    for png in ("melt_maps.png", "melt_timeseries.png", "velocity_series.png"):
        assert (tmp_path / "demo" / png).stat().st_size > 10_000
    assert "[melt] Nagler wet snow" in result.stdout
    assert "[series] 32 of 32 intervals determined" in result.stdout
    assert "[insar] synthetic permafrost: 204 interferograms" in result.stdout
    assert "[ice] synthetic floes:" in result.stdout and (tmp_path / "demo" / "ice_drift_synthetic.png").stat().st_size > 10_000
    rmse = re.search(r"\[redifferential\].* ([\d.]+) cm unwrapped directly, ([\d.]+) cm re-differential", result.stdout)
    assert rmse and float(rmse[2]) < 1.0 < float(rmse[1])  # direct unwrapping fails, re-differential < 1 cm LoS
    assert (tmp_path / "demo" / "redifferential_glacier.png").stat().st_size > 10_000
    series = xr.open_zarr(tmp_path / "demo" / "velocity_series.zarr")
    assert series.vx.dims == ("time", "y", "x") and series.attrs["time_step_days"] == 6.0
    season = xr.open_zarr(tmp_path / "demo" / "melt_s1.zarr")
    assert season.melt_onset.dims == ("year", "y", "x") and season.melt.sizes["time"] == 66


def test_melt_command_writes_flags_seasons_and_maps(tmp_path, capsys):
    store = tmp_path / "s1.zarr"
    assert main(["cube", str(S1_CATALOG), "--assets", "hh", "hv", "incidence_angle", "--out", str(store)]) == 0
    out = tmp_path / "melt.zarr"
    argv = ["melt", str(store), "--out", str(out), "--reference", "2019-04-01", "2019-04-30", "--window", "5",
            "--normalize", "slope", "--slope", "-0.14", "--maps", str(tmp_path / "maps.png")]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "nagler, threshold -2 dB, reference 2019-04-01 to 2019-04-30" in text
    result = xr.open_zarr(out).compute()
    assert set(result.data_vars) == {"melt", "melt_onset", "melt_end", "melt_days", "valid_scenes"}
    assert 140 < float(result.melt_onset.median()) < 160  # simulator: onset 125 + z/25, z ~ 250-900 m
    assert (tmp_path / "maps.png").stat().st_size > 10_000
    assert main(argv) == 2  # refuses to overwrite
    assert main(["melt", str(store), "--out", str(tmp_path / "m2.zarr")]) == 2  # no January-March scenes in the cube
    assert "no reference scene for relative_orbit=25 in months (1, 2, 3)" in capsys.readouterr().err


def test_velocity_command_writes_a_series(tmp_path, capsys):
    store = tmp_path / "s2.zarr"
    assert main(["cube", str(REPO / "catalogs" / "greenland-s2" / "catalog.json"), "--assets", "B08", "--out", str(store)]) == 0
    out = tmp_path / "series.zarr"
    assert main(["velocity", str(store), "--out", str(out), "--min-days", "4", "--max-days", "12", "--search", "8",
                 "--prefilter", "wallis"]) == 0
    assert "9 pairs between 15 dates, 6 connected component(s)" in capsys.readouterr().out
    series = xr.open_zarr(out).compute()
    assert series.vx.dims == ("time", "y", "x") and series.sizes["time"] == 12
    assert int(np.isfinite(series.vx).any(("y", "x")).sum()) == 9  # 3 intervals fall between components
    assert main(["velocity", str(store), "--out", str(tmp_path / "r.zarr"), "--method", "regularized"]) == 2
    assert "smoothing" in capsys.readouterr().err


def test_ice_drift_from_two_geotiffs(tmp_path, capsys):
    from cryocube.ice_scenes import floe_pair

    reference, secondary, truth = floe_pair((256, 256), n_floes=4, seed=2)
    paths = [tmp_path / "a.tif", tmp_path / "b.tif"]
    for image, path in zip((reference, secondary), paths):
        image.drop_vars("time").rio.to_raster(path)
    times = [str(np.datetime_as_string(image.time.values, unit="s")) for image in (reference, secondary)]
    out = tmp_path / "drift.zarr"
    argv = ["ice-drift", *map(str, paths), "--times", *times, "--grid-step", "2000", "--out", str(out), "--quiver", str(tmp_path / "q.png")]
    assert main(argv) == 0
    assert "% accepted" in capsys.readouterr().out and (tmp_path / "q.png").stat().st_size > 10_000
    drift = xr.open_zarr(out, decode_coords="all").compute()
    ok = drift.flag.values == 0
    true_x = truth.displacement_x.sel(y=drift.y, x=drift.x, method="nearest").values
    assert ok.mean() > 0.5 and np.nanmedian(np.abs(drift.displacement_x.values[ok] - true_x[ok])) < 50  # m, 100 m pixels
    assert main(["ice-drift", *map(str, paths), "--out", str(tmp_path / "x.zarr")]) == 2
    assert "--times" in capsys.readouterr().err


def test_insar_on_the_mexico_city_stack(tmp_path, capsys):
    from tests.conftest import SHARED_DATA

    stack = SHARED_DATA / "pyrate_cropA_s1_insar_stack"
    out = tmp_path / "mx.zarr"
    argv = ["insar", str(stack / "geotiffs"), "--headers", str(stack / "headers"), "--out", str(out),
            "--reference-area", "-99.186", "19.425", "-99.165", "19.443", "--map", str(tmp_path / "v.png")]
    assert main(argv) == 0
    assert "deformation model: linear (the stack spans 192 days)" in capsys.readouterr().out
    product = xr.open_zarr(out, decode_coords="all").compute()
    assert product.displacement.dims == ("time", "y", "x") and product.sizes["time"] == 13
    v = product.velocity.values
    # Mexico City subsidence: LoS order -0.2 to -0.3 m/yr on the lake bed (east), ~0 on the western hills (reference)
    assert np.nanpercentile(v, 1) < -0.2 and abs(np.nanmedian(v[:, :15])) < 0.02
    assert (tmp_path / "v.png").stat().st_size > 10_000
    assert main(["insar", str(stack / "geotiffs"), "--out", str(tmp_path / "x.zarr")]) == 2
    assert "--reference-point Y X or --reference-area" in capsys.readouterr().err
    # the same stack as a static STAC catalog (one item per pair), first three months only
    import pystac

    from cryocube.interferograms import interferogram_items

    catalog = pystac.Catalog("mx", "interferograms")
    catalog.add_items(interferogram_items(stack / "geotiffs", center_frequency_ghz=5.405))
    catalog.normalize_and_save(str(tmp_path / "stac"), pystac.CatalogType.SELF_CONTAINED)
    argv = ["insar", str(tmp_path / "stac"), "--datetime", "2018-01/2018-03", "--out", str(tmp_path / "s.zarr"),
            "--headers", str(stack / "headers"),
            "--reference-area", "-99.186", "19.425", "-99.165", "19.443", "--model", "linear"]
    assert main(argv) == 0
    assert "interferogram item(s) found" in capsys.readouterr().out
    subset = xr.open_zarr(tmp_path / "s.zarr")
    assert 2 < subset.sizes["time"] < 13 and str(subset.time.values[0])[:10] == "2018-01-06"
