"""Run MintPy's default weighted SBAS inversion on a stack saved by ``benchmarks/sbas.py`` (benchmark-only helper).

Runs inside the separate ``.venv-mintpy`` virtualenv (MintPy is never a cryocube
dependency)::

    .venv-mintpy/bin/python benchmarks/_mintpy_invert.py WORKDIR

``WORKDIR`` holds ``phase.npy``, ``coherence.npy`` (``(pair, y, x)`` float32) and
``meta.json`` (``date12`` list ``YYYYMMDD_YYYYMMDD``, ``wavelength_m``,
``n_looks``). The helper writes a MintPy ``ifgramStack.h5`` (the layout of
``mintpy.objects.ifgramStack``: ``date``, ``dropIfgram``, ``bperp``,
``unwrapPhase``, ``coherence``; ``NCORRLOOKS`` = ``n_looks``) and calls
``mintpy.ifgram_inversion.run_ifgram_inversion_patch`` with MintPy's defaults
(``smallbaselineApp.cfg``: ``weightFunc = var``, ``minNormVelocity = yes``,
``maskDataset = no``, ``minRedundancy = 1``) on the whole image, one thread for
numpy/scipy as ``run_ifgram_inversion`` sets it. No reference phase is
subtracted (``ref_phase`` = 0), as the synthetic stack has no unwrapping
constants. It writes ``mintpy_result.npz`` (``timeseries`` m, ``temporal_coherence``,
``num_inv_obs``) and prints ``MINTPY_SECONDS <wall time of the inversion>``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from mintpy import ifgram_inversion  # noqa: E402


def write_stack(workdir: Path) -> Path:
    meta = json.loads((workdir / "meta.json").read_text())
    phase = np.load(workdir / "phase.npy", mmap_mode="r")
    coherence = np.load(workdir / "coherence.npy", mmap_mode="r")
    n_pairs, length, width = phase.shape
    path = workdir / "ifgramStack.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("date", data=np.array([d.split("_") for d in meta["date12"]], dtype=np.bytes_))
        f.create_dataset("dropIfgram", data=np.ones(n_pairs, dtype=np.bool_))
        f.create_dataset("bperp", data=np.zeros(n_pairs, dtype=np.float32))
        f.create_dataset("unwrapPhase", data=np.nan_to_num(phase, nan=0.0))
        f.create_dataset("coherence", data=np.nan_to_num(coherence, nan=0.0))
        f.attrs.update({"FILE_TYPE": "ifgramStack", "LENGTH": str(length), "WIDTH": str(width),
                        "WAVELENGTH": str(meta["wavelength_m"]), "NCORRLOOKS": str(meta["n_looks"]),
                        "ALOOKS": "1", "RLOOKS": "1", "PROCESSOR": "cryocube", "REF_Y": "0", "REF_X": "0"})
    return path


def main(workdir: str) -> None:
    work = Path(workdir)
    stack = write_stack(work)
    n_pairs = np.load(work / "phase.npy", mmap_mode="r").shape[0]
    start = time.perf_counter()
    ts, _, quality, num_obs, _ = ifgram_inversion.run_ifgram_inversion_patch(
        str(stack), box=None, ref_phase=np.zeros(n_pairs, dtype=np.float32), obs_ds_name="unwrapPhase",
        weight_func="var", min_norm_velocity=True, mask_ds_name=None, min_redundancy=1.0, calc_cov=False)
    seconds = time.perf_counter() - start
    np.savez(work / "mintpy_result.npz", timeseries=ts, temporal_coherence=quality, num_inv_obs=num_obs)
    print(f"MINTPY_SECONDS {seconds:.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
