"""Tests of cryocube.store: round trips, laziness, refusals, and crash consistency.

The kill tests start a writer in a subprocess whose dask chunks sleep, wait until it
has put some chunks on disk, SIGKILL it, and check what a reader sees.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.core.codec_pipeline import BatchedCodecPipeline

from cryocube.compute import zarr_reads
from cryocube.store import NotACubeStoreError, append_cube, open_cube, write_cube

REPO = Path(__file__).resolve().parents[1]

# Shared by the tests and the writer subprocesses: a deterministic SAR-like cube.
CUBE_SRC = textwrap.dedent(
    '''
    import time as _time
    import numpy as np, pandas as pd, xarray as xr, dask.array as da
    import rioxarray  # noqa: F401  (registers .rio)

    def make_cube(start, n, prefix, seed, ny=48, nx=40, slow=0.0, crs="EPSG:3413", x0=-200000.0, incidence=True):
        """n scenes every 12 days from start; dask chunks of one scene that sleep `slow` s each."""
        rng = np.random.default_rng(seed)
        def var(loc, scale):
            arr = rng.normal(loc, scale, (n, ny, nx)).astype("float32")
            d = da.from_array(arr, chunks=(1, 16, 16))
            if slow:
                d = d.map_blocks(lambda b: (_time.sleep(slow), b)[1], dtype="float32")
            return d
        data = {
            "hh": (("time", "y", "x"), var(-12.0, 3.0), {"units": "dB", "long_name": "HH backscatter coefficient sigma0"}),
            "hv": (("time", "y", "x"), var(-20.0, 3.0), {"units": "dB", "long_name": "HV backscatter coefficient sigma0"}),
        }
        if incidence:
            data["incidence_angle"] = (("time", "y", "x"), var(35.0, 5.0), {"units": "degree", "long_name": "radar incidence angle"})
        times = pd.date_range(start, periods=n, freq="12D") + pd.Timedelta("8h 14min 3.123456s")
        ds = xr.Dataset(
            data,
            coords={
                "time": times.values.astype("datetime64[ns]"),
                "y": -2000000.0 - 40.0 * np.arange(ny) - 20.0,
                "x": x0 + 40.0 * np.arange(nx) + 20.0,
                "item_id": ("time", [f"{prefix}_{i:03d}_{'X' * (i % 3)}" for i in range(n)]),
                "platform": ("time", ["sentinel-1a" if i % 2 else "sentinel-1b" for i in range(n)]),
                "orbit_state": ("time", ["ascending" if i % 3 else "descending" for i in range(n)]),
                "relative_orbit": ("time", np.arange(n, dtype="int64") + 25),
                "view_incidence_angle": ("time", 30.0 + np.arange(n, dtype="float64")),
                "cloud_cover": ("time", np.where(np.arange(n) % 2, np.nan, 10.0)),
                "collection": ("time", ["sentinel-1-grd"] * n),
            },
            attrs={"cryocube_parameters": {"resolution": 40.0, "crs": crs}, "title": "test cube"},
        )
        return ds.rio.write_crs(crs)
    '''
)
exec(CUBE_SRC)  # defines make_cube here too  # noqa: S102

CHUNKS = {"time": 2, "y": 16, "x": 16}


def _cube_a(**kw):
    return make_cube("2021-01-01", 5, "S1A", seed=1, **kw)  # noqa: F821


def _cube_b(**kw):
    return make_cube("2021-05-01", 6, "S1B", seed=2, **kw)  # noqa: F821


def assert_cube_equal(actual: xr.Dataset, expected: xr.Dataset) -> None:
    """Values, dtypes, coordinates (strings included), attributes and CRS."""
    xr.testing.assert_equal(actual, expected)
    for name, var in expected.variables.items():
        if name == "spatial_ref":
            continue
        got = actual[name]
        if var.dtype.kind in "UO":
            assert got.dtype.kind == "U", (name, got.dtype)
            assert [str(v) for v in got.values] == [str(v) for v in var.values], name
        else:
            assert got.dtype == var.dtype, (name, got.dtype, var.dtype)
        for k, v in var.attrs.items():
            if k != "grid_mapping":
                assert got.attrs[k] == v, (name, k)
    for k, v in expected.attrs.items():
        assert actual.attrs[k] == v, k
    assert actual.rio.crs == expected.rio.crs
    assert actual.attrs["cryocube_item_ids"] == [str(i) for i in expected.item_id.values]
    assert "cryocube_version" in actual.attrs


def _count_computes():
    calls = []

    def scheduler(dsk, keys, **kwargs):
        calls.append(keys)
        return dask.get(dsk, keys, **kwargs)

    return calls, scheduler


# ------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_round_trip(tmp_path, zarr_format):
    cube = _cube_a()
    path = tmp_path / "cube.zarr"
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")  # no zarr string/consolidation warnings leak
        assert write_cube(cube, path, zarr_format=zarr_format, chunks=CHUNKS) == str(path)
        out = open_cube(path)
    assert_cube_equal(out, cube)
    assert out.time.dtype == np.dtype("datetime64[ns]")
    assert (out.time.values == cube.time.values).all()  # microseconds kept exactly
    assert np.isnan(out.cloud_cover.values[1]) and out.cloud_cover.values[0] == 10.0
    assert out.hh.encoding["chunks"] == (2, 16, 16)
    # the format asked for is the format written, and plain xarray reads it with the CRS
    assert zarr.open_group(path, mode="r").metadata.zarr_format == zarr_format
    plain = xr.open_zarr(path, decode_coords="all")
    assert plain.rio.crs == cube.rio.crs and plain.sizes["time"] == 5


def test_default_chunks_and_codec(tmp_path):
    cube = make_cube("2021-01-01", 3, "S1A", seed=3, ny=600, nx=20, incidence=False)  # noqa: F821
    write_cube(cube, tmp_path / "c.zarr")
    arr = zarr.open_array(tmp_path / "c.zarr", path="hh")
    assert arr.chunks == (4, 512, 20)
    meta = json.loads((tmp_path / "c.zarr" / "hh" / "zarr.json").read_text())
    blosc = [c for c in meta["codecs"] if c["name"] == "blosc"]
    assert blosc and blosc[0]["configuration"]["cname"] == "lz4" and blosc[0]["configuration"]["shuffle"] == "bitshuffle"
    write_cube(cube, tmp_path / "zs.zarr", compressor="blosc-zstd", zarr_format=2)
    meta = json.loads((tmp_path / "zs.zarr" / "hh" / ".zarray").read_text())
    assert meta["compressor"]["id"] == "blosc" and meta["compressor"]["cname"] == "zstd" and meta["compressor"]["shuffle"] == 2
    write_cube(cube, tmp_path / "raw.zarr", compressor=None)
    meta = json.loads((tmp_path / "raw.zarr" / "hh" / "zarr.json").read_text())
    assert [c["name"] for c in meta["codecs"]] == ["bytes"]
    xr.testing.assert_equal(open_cube(tmp_path / "raw.zarr"), open_cube(tmp_path / "c.zarr"))
    with pytest.raises(ValueError, match="unknown compressor"):
        write_cube(cube, tmp_path / "bad.zarr", compressor="gzip9")


def test_open_is_lazy(tmp_path):
    write_cube(_cube_a(), tmp_path / "c.zarr", chunks=CHUNKS)
    calls, scheduler = _count_computes()
    with dask.config.set(scheduler=scheduler):
        out = open_cube(tmp_path / "c.zarr", chunks={})
    assert calls == []
    for name in ("hh", "hv", "incidence_angle"):
        assert dask.is_dask_collection(out[name].data), name
    assert out.hh.chunks == ((2, 2, 1), (16, 16, 16), (16, 16, 8))
    assert not dask.is_dask_collection(out.item_id.data)


def test_write_keeps_dask_lazy_until_written(tmp_path):
    """write_cube computes the graph once, chunk by chunk (no eager load of the cube)."""
    calls, scheduler = _count_computes()
    with dask.config.set(scheduler=scheduler):
        write_cube(_cube_a(), tmp_path / "c.zarr", chunks=CHUNKS)
    assert len(calls) == 1


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "c.zarr"
    write_cube(_cube_a(), path, chunks=CHUNKS)
    with pytest.raises(FileExistsError, match=r"c\.zarr.*mode='w'"):
        write_cube(_cube_b(), path)
    assert_cube_equal(open_cube(path), _cube_a())
    write_cube(_cube_b(), path, mode="w", chunks=CHUNKS)
    assert_cube_equal(open_cube(path), _cube_b())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        write_cube(_cube_a(), tmp_path / "notes", mode="w")
    assert (tmp_path / "notes" / "keep.txt").exists()


def test_open_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        open_cube(tmp_path / "missing.zarr")
    (tmp_path / "junk").mkdir()
    with pytest.raises(NotACubeStoreError, match="junk"):
        open_cube(tmp_path / "junk")
    xr.Dataset({"a": ("t", [1, 2])}).to_zarr(tmp_path / "plain.zarr", consolidated=False)
    with pytest.raises(NotACubeStoreError, match=r"plain\.zarr' is not a cryocube store"):
        open_cube(tmp_path / "plain.zarr")
    xr.Dataset({"a": ("t", [1, 2])}).to_zarr(tmp_path / "plain2.zarr", zarr_format=2, consolidated=True)
    with pytest.raises(NotACubeStoreError, match=r"plain2\.zarr.*cryocube_commit"):
        open_cube(tmp_path / "plain2.zarr")


# ------------------------------------------------------------------------------- appends


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_append_round_trip(tmp_path, zarr_format):
    path = tmp_path / "c.zarr"
    write_cube(_cube_a(), path, zarr_format=zarr_format, chunks=CHUNKS)  # 5 scenes: last chunk half full
    append_cube(_cube_b(), path)
    expected = xr.concat([_cube_a(), _cube_b()], dim="time")
    out = open_cube(path)
    assert_cube_equal(out, expected)
    assert len(out.attrs["cryocube_history"]) == 2 and out.attrs["cryocube_history"][1]["scenes"] == 6
    # any zarr reader using the consolidated metadata sees the same
    xr.testing.assert_equal(xr.open_zarr(path, decode_coords="all"), expected)


def test_append_refuses_duplicates(tmp_path):
    path = tmp_path / "c.zarr"
    write_cube(_cube_a(), path, chunks=CHUNKS)
    dup = xr.concat([_cube_a().isel(time=[3, 4]), _cube_b()], dim="time")
    ids = [str(i) for i in _cube_a().item_id.values[3:]]
    with pytest.raises(ValueError, match="already in") as err:
        append_cube(dup, path)
    for i in ids:
        assert i in str(err.value)
    assert open_cube(path).sizes["time"] == 5
    with pytest.warns(UserWarning, match=ids[0]):
        append_cube(dup, path, skip_existing=True)
    assert_cube_equal(open_cube(path), xr.concat([_cube_a(), _cube_b()], dim="time"))


def test_concurrent_appends_are_refused_and_stale_locks_taken_over(tmp_path):
    import subprocess
    import threading

    from cryocube.store import StoreBusyError, _writer_lock

    path = tmp_path / "c.zarr"
    write_cube(_cube_a(), path, chunks=CHUNKS)
    with _writer_lock(path, "test", str(path)):  # another appender holds the store
        with pytest.raises(StoreBusyError, match=rf"c\.zarr.*process {os.getpid()}.*concurrent appends are refused"):
            append_cube(_cube_b(), path)
    assert open_cube(path).sizes["time"] == 5
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / ".c.zarr.cryocube-lock").write_text(str(dead.pid))  # left by a killed appender
    append_cube(_cube_b(), path)
    assert open_cube(path).sizes["time"] == 11 and not (tmp_path / ".c.zarr.cryocube-lock").exists()
    # two threads appending at once, released together, several times: one wins, the other
    # is refused or goes after it; never a lost append or a corrupt store
    for attempt in range(8):
        other = tmp_path / f"d{attempt}.zarr"
        write_cube(_cube_a(), other, chunks=CHUNKS)
        outcomes: list[str] = []
        start = threading.Barrier(2)

        def append(scenes, target=other, outcomes=outcomes, start=start):
            start.wait()
            try:
                append_cube(scenes, target)
                outcomes.append("ok")
            except (StoreBusyError, ValueError):  # busy, or (after the other) scenes earlier than the store's last
                outcomes.append("refused")

        halves = [_cube_b().isel(time=slice(0, 3)), _cube_b().isel(time=slice(3, 6))]
        threads = [threading.Thread(target=append, args=(h,)) for h in halves]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stored = open_cube(other)
        assert len(outcomes) == 2 and "ok" in outcomes, outcomes
        assert stored.sizes["time"] == 5 + 3 * outcomes.count("ok"), (attempt, outcomes, stored.sizes["time"])
        for name, var in _cube_a().data_vars.items():  # the committed scenes are untouched
            np.testing.assert_array_equal(stored[name].values[:5], var.values)
        assert stored.indexes["time"].is_monotonic_increasing


def test_append_refuses_other_grid_and_variables(tmp_path):
    path = tmp_path / "c.zarr"
    write_cube(_cube_a(), path, chunks=CHUNKS)
    with pytest.raises(ValueError, match="'x' coordinates differ"):
        append_cube(make_cube("2021-05-01", 2, "S1B", seed=2, x0=0.0), path)  # noqa: F821
    with pytest.raises(ValueError, match="'y' has 47 pixels"):
        append_cube(_cube_b().isel(y=slice(1, None)), path)
    with pytest.raises(ValueError, match="CRS differs"):
        append_cube(make_cube("2021-05-01", 2, "S1B", seed=2, crs="EPSG:3031"), path)  # noqa: F821
    with pytest.raises(ValueError, match=r"variables missing from the new scenes: \['incidence_angle'\]"):
        append_cube(_cube_b(incidence=False), path)
    with pytest.raises(ValueError, match=r"variables not in the store: \['vv'\]"):
        append_cube(_cube_b().assign(vv=_cube_b().hh), path)
    with pytest.raises(ValueError, match=r"per-scene coordinates missing.*\['cloud_cover'\]"):
        append_cube(_cube_b().drop_vars("cloud_cover"), path)
    with pytest.raises(ValueError, match=r"'hh' is float64"):
        append_cube(_cube_b().assign(hh=_cube_b().hh.astype("float64")), path)
    early = make_cube("2020-06-01", 2, "OLD", seed=5)  # noqa: F821
    with pytest.raises(ValueError, match=r"earlier than the last stored scene.*OLD_000"):
        append_cube(early, path)
    assert_cube_equal(open_cube(path), _cube_a())  # nothing changed


def test_fsspec_memory_url():
    url = "memory://cryocube-test/cube.zarr"
    write_cube(_cube_a(), url, chunks=CHUNKS, mode="w")
    with pytest.raises(FileExistsError, match="memory://cryocube-test/cube.zarr"):
        write_cube(_cube_a(), url)
    append_cube(_cube_b(), url)
    assert_cube_equal(open_cube(url), xr.concat([_cube_a(), _cube_b()], dim="time"))


class ChosenPipeline(BatchedCodecPipeline):
    """A codec pipeline a user picked in ``zarr.config`` (zarr-python's own, under another name)."""


zarr.registry.register_pipeline(ChosenPipeline)


def _pipeline(path: Path) -> str:
    return type(zarr.open_array(path, mode="r")._async_array.codec_pipeline).__name__


def test_reads_go_through_zarrs_unless_the_user_chose_a_pipeline(tmp_path):
    """open_cube's arrays decode with zarrs (same values, v2 and v3 stores); a pipeline chosen in zarr.config is kept."""
    for fmt in (2, 3):
        path = tmp_path / f"cube{fmt}.zarr"
        write_cube(_cube_a(), path, chunks=CHUNKS, zarr_format=fmt)
        assert_cube_equal(open_cube(path), _cube_a())  # through zarrs (checked below)
        assert _pipeline(path / "hh") == "BatchedCodecPipeline"  # zarr's default outside open_cube
        with zarr_reads():
            assert _pipeline(path / "hh") == "ZarrsCodecPipeline"
            np.testing.assert_array_equal(zarr.open_array(path / "hh", mode="r")[:], _cube_a().hh.values)
    with zarr.config.set({"codec_pipeline.path": f"{__name__}.ChosenPipeline"}), zarr_reads():
        assert _pipeline(tmp_path / "cube3.zarr" / "hh") == "ChosenPipeline"


# ------------------------------------------------------------------------------- crash tests

WRITER = CUBE_SRC + textwrap.dedent(
    """
    import sys
    from cryocube.store import write_cube, append_cube
    action, path, fmt = sys.argv[1], sys.argv[2], int(sys.argv[3])
    chunks = {"time": 2, "y": 16, "x": 16}
    if action == "append":
        append_cube(make_cube("2021-05-01", 6, "S1B", seed=2, slow=0.15), path)
    elif action == "write":
        write_cube(make_cube("2021-01-01", 5, "S1A", seed=1, slow=0.15), path, zarr_format=fmt, chunks=chunks)
    elif action == "overwrite":
        write_cube(make_cube("2021-05-01", 6, "S1B", seed=2, slow=0.15), path, zarr_format=fmt, chunks=chunks, mode="w")
    print("FINISHED", flush=True)
    """
)


def _chunk_files(root: Path) -> int:
    n = 0
    for var in ("hh", "hv", "incidence_angle"):
        d = root / var
        if d.is_dir():
            n += sum(1 for p in d.rglob("*") if p.is_file() and p.name not in ("zarr.json", ".zarray", ".zattrs"))
    return n


def _run_and_kill(tmp_path: Path, action: str, path: Path, fmt: int, watch, min_new: int = 4, timeout: float = 60.0):
    """Start the writer, wait until `watch()` counts `min_new` more chunk files, SIGKILL it."""
    before = watch()
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), action, str(path), str(fmt)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    try:
        while watch() < before + min_new:
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"writer ended before it could be killed: rc={proc.returncode}\n{out.decode()}\n{err.decode()}")
            if time.monotonic() - t0 > timeout:
                pytest.fail("writer made no progress")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the writer finished before it was killed; the test proved nothing"
    assert b"FINISHED" not in proc.stdout.read()


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_killed_append_keeps_committed_scenes_and_rerun_completes(tmp_path, zarr_format):
    path = tmp_path / "c.zarr"
    write_cube(_cube_a(), path, zarr_format=zarr_format, chunks=CHUNKS)
    _run_and_kill(tmp_path, "append", path, zarr_format, lambda: _chunk_files(path))

    # the kill hit mid-append: arrays were grown and some new chunks are on disk ...
    raw = zarr.open_group(path, mode="r", use_consolidated=False)
    assert raw["hh"].shape[0] == 11
    # ... yet readers see exactly the committed scenes, bit for bit
    out = open_cube(path)
    assert_cube_equal(out, _cube_a())
    xr.testing.assert_equal(xr.open_zarr(path, decode_coords="all"), _cube_a())  # plain consolidated reader too
    assert not set(out.item_id.values) & set(_cube_b().item_id.values)

    if zarr_format == 3:
        append_cube(_cube_b(), path)  # rerun of the same append: rolls back the tail, completes
    else:
        # a different, shorter append after the crash must not inherit the dead tail
        append_cube(_cube_b().isel(time=slice(0, 2)), path)
        assert zarr.open_group(path, mode="r", use_consolidated=False)["hh"].shape[0] == 7
        assert_cube_equal(open_cube(path), xr.concat([_cube_a(), _cube_b().isel(time=slice(0, 2))], dim="time"))
        append_cube(_cube_b().isel(time=slice(2, None)), path)
    assert_cube_equal(open_cube(path), xr.concat([_cube_a(), _cube_b()], dim="time"))
    assert not list(path.rglob("*.partial"))


def test_killed_first_write_leaves_no_store_and_rerun_succeeds(tmp_path):
    path = tmp_path / "c.zarr"

    def watch():
        tmps = [p for p in tmp_path.iterdir() if p.name.startswith(".c.zarr.cryocube-tmp-")]
        return sum(_chunk_files(p) for p in tmps)

    _run_and_kill(tmp_path, "write", path, 3, watch)
    assert not path.exists()
    assert any(p.name.startswith(".c.zarr.cryocube-tmp-") for p in tmp_path.iterdir())  # the killed writer's leftovers
    with pytest.raises(FileNotFoundError, match="c.zarr"):
        open_cube(path)
    write_cube(_cube_a(), path, chunks=CHUNKS)  # mode="w-" works: nothing was committed
    assert_cube_equal(open_cube(path), _cube_a())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.zarr")]  # stale temporary removed


def test_killed_overwrite_keeps_previous_store(tmp_path):
    path = tmp_path / "c.zarr"
    write_cube(_cube_a(), path, zarr_format=2, chunks=CHUNKS)

    def watch():
        return sum(_chunk_files(p) for p in tmp_path.iterdir() if p.name.startswith(".c.zarr.cryocube-tmp-"))

    _run_and_kill(tmp_path, "overwrite", path, 2, watch)
    assert_cube_equal(open_cube(path), _cube_a())
    write_cube(_cube_b(), path, zarr_format=2, chunks=CHUNKS, mode="w")
    assert_cube_equal(open_cube(path), _cube_b())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.zarr")]


def test_overwrite_without_rename_exchange_and_backup_recovery(tmp_path, monkeypatch):
    """The two-rename fallback, and the state a crash between its renames leaves."""
    import cryocube.store as store

    path = tmp_path / "c.zarr"
    write_cube(_cube_a(), path, chunks=CHUNKS)
    monkeypatch.setattr(store, "_exchange", lambda a, b: False)
    write_cube(_cube_b(), path, chunks=CHUNKS, mode="w")
    assert_cube_equal(open_cube(path), _cube_b())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.zarr")]
    # crash after "rename store -> backup", before "rename temporary -> store":
    backup = tmp_path / ".c.zarr.cryocube-old-999999999-deadbeef"
    os.rename(path, backup)
    (tmp_path / ".c.zarr.cryocube-tmp-999999999-deadbeef").mkdir()  # the unfinished new store
    assert_cube_equal(open_cube(path), _cube_b())  # previous store put back
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.zarr")]


def test_progress_and_input_untouched(tmp_path, capsys):
    cube = _cube_a()
    encodings = {k: dict(v.encoding) for k, v in cube.variables.items()}
    write_cube(cube, tmp_path / "c.zarr", chunks=CHUNKS, progress=True)
    assert "Completed" in capsys.readouterr().out
    append_cube(_cube_b(), tmp_path / "c.zarr", progress=True)
    assert "Completed" in capsys.readouterr().out
    assert {k: dict(v.encoding) for k, v in cube.variables.items()} == encodings
    assert dask.is_dask_collection(cube.hh.data) and cube.hh.chunks[0] == (1,) * 5
