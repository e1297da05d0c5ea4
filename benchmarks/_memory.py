"""Peak resident memory of the current process, for the benchmarks' per-contender child processes."""

from __future__ import annotations

from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB): ``VmHWM`` of ``/proc/self/status`` (Linux).

    Not ``resource.getrusage``: its ``ru_maxrss`` survives fork + exec, so a child
    process would report its parent's high-water mark when that is larger (e.g. a
    parent that generated the benchmark data).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: the benchmarks measure memory on Linux only")
