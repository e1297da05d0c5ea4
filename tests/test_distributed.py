"""cryocube under a real dask.distributed cluster: `dask scheduler` and two `dask worker` processes on loopback.

Each algorithm runs through the cluster and must give exactly the local (threaded)
result; a worker killed with SIGKILL in the middle of a job must not lose it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr

import cryocube as cc
from cryocube import melt_scenes
from tests.conftest import REPO

distributed = pytest.importorskip("distributed")

S1_CATALOG = REPO / "catalogs" / "greenland-s1" / "catalog.json"
S2_CATALOG = REPO / "catalogs" / "greenland-s2" / "catalog.json"
DASK = Path(sys.executable).parent / "dask"


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(DASK), *args], stdout=subprocess.DEVNULL, stderr=log.open("w"), cwd=REPO)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A scheduler and two single-threaded workers (with nannies, 1.5 GB each) started with the dask CLI."""
    folder = tmp_path_factory.mktemp("cluster")
    scheduler_file = folder / "scheduler.json"
    processes = [_start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                         "--scheduler-file", str(scheduler_file)], folder / "scheduler.log")]
    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert scheduler_file.exists(), (folder / "scheduler.log").read_text()
    for k in range(2):
        processes.append(_start(["worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--no-dashboard",
                                 "--memory-limit", "1.5GB", "--host", "127.0.0.1"], folder / f"worker{k}.log"))
    with distributed.Client(scheduler_file=str(scheduler_file), timeout=60) as c:
        c.wait_for_workers(2, timeout=90)
        assert json.loads(scheduler_file.read_text())["address"].startswith("tcp://127.0.0.1:")
        yield c
    for p in reversed(processes):
        p.terminate()
    for p in processes:
        p.wait(timeout=30)


def _local(obj):
    with dask.config.set(scheduler="threads"):
        return obj.compute()


def test_cube_build_and_store_through_the_cluster(client, tmp_path):
    cube = cc.build_cube(cc.search(S1_CATALOG, datetime="2019-05-01/2019-05-31"), assets=["hh", "hv"])
    cc.write_cube(cube, tmp_path / "cluster.zarr")  # computed on the workers (the client is the default)
    stored = cc.open_cube(tmp_path / "cluster.zarr")
    xr.testing.assert_identical(stored.compute(), _local(cc.open_cube(tmp_path / "cluster.zarr")))
    np.testing.assert_array_equal(stored.hh.values, _local(cube.hh))


def test_offset_tracking_through_the_cluster(client):
    cube = cc.build_cube(cc.search(S2_CATALOG), assets=["B08"])
    offsets = cube.cryo.track_offsets(0, 1, variable="B08", search_px=8, prefilter="wallis")
    assert offsets.dx.chunks is not None
    xr.testing.assert_identical(offsets.compute(), _local(offsets))


def test_melt_through_the_cluster(client):
    cube, _ = melt_scenes.melt_cube()
    chunked = cube.assign({k: v.chunk({"y": 16, "x": 24}) for k, v in cube.data_vars.items()})
    season = cc.melt_season(cc.detect_melt(chunked, method="nagler"))
    xr.testing.assert_identical(season.compute(), _local(season))


def test_sbas_inversion_through_the_cluster(client):
    from cryocube.insar_scenes import permafrost_stack

    ifgs, _ = permafrost_stack(shape=(48, 64), n_dates=30, seed=2)
    chunked = ifgs.assign({k: v.chunk({"y": 20, "x": 24}) for k, v in ifgs.data_vars.items()})
    ts = cc.invert_sbas(chunked, reference=(float(ifgs.y[20]), float(ifgs.x[-2])))
    fit = cc.fit_deformation(ts)
    xr.testing.assert_identical(ts.compute(), _local(ts))
    xr.testing.assert_identical(fit.compute(), _local(fit))


@pytest.mark.filterwarnings("ignore:Sending large graph")
def test_a_killed_worker_does_not_lose_the_job(client):
    cube, _ = melt_scenes.melt_cube((96, 128), seed=3)
    chunked = cube.assign({k: v.chunk({"y": 8, "x": 8}) for k, v in cube.data_vars.items()})
    melt = cc.detect_melt(chunked, method="nagler", window_px=5).melt
    expected = _local(melt)
    future = client.compute(melt)
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and not future.done():
        busy = [address for address, tasks in client.processing().items() if tasks]
        victim = busy[0] if busy else None
        time.sleep(0.01)
    assert victim is not None, "the job finished before a worker could be killed"
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    result = future.result(timeout=180)
    xr.testing.assert_identical(result, expected)
    client.wait_for_workers(2, timeout=90)  # the nanny restarts the killed worker, on a new port
    assert victim not in client.scheduler_info()["workers"]


def test_cli_runs_on_the_scheduler(client, tmp_path, capsys, monkeypatch):
    from cryocube import cli
    from cryocube.cli import main

    monkeypatch.setattr(cli, "SCHEDULER_TIMEOUT", "2s")
    address = client.scheduler.address
    store = tmp_path / "s1.zarr"
    argv = ["--scheduler", address, "cube", str(S1_CATALOG), "--datetime", "2019-04-01/2019-05-31",
            "--assets", "hh", "hv", "incidence_angle", "--out", str(store)]
    assert main(argv) == 0
    assert f"dask scheduler {address}: 2 workers" in capsys.readouterr().out
    argv = ["--scheduler", address, "melt", str(store), "--out", str(tmp_path / "melt.zarr"), "--normalize", "none",
            "--reference", "2019-04-01", "2019-04-30"]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["--scheduler", "tcp://127.0.0.1:1", "cube", str(S1_CATALOG), "--out", str(tmp_path / "x.zarr")]) == 2
    assert "error" in capsys.readouterr().err
