"""Where a run's numbers came from: the torch build, the CPU, the thread count, the engine, the precision.

The same config and seed give the same numbers on the same machine, torch build
and thread count; another thread count changes the order of floating-point sums
(and, on a chaotic trajectory, where the run ends up), so a result records them
beside its config (:meth:`byzlab.core.simulator.Simulation.result`, the results
table's columns :data:`COLUMNS`).
"""
from __future__ import annotations

import functools
import platform

import torch

#: provenance columns of a results table (``byzlab.running.tables.results_table``), from a run's metadata
COLUMNS = ("engine", "precision", "threads", "torch", "cpu")


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def torch_build() -> str:
    """torch's version and build: ``2.14.1+cu130 (git 1a2b3c4, CUDA 13.0)``."""
    cuda = torch.version.cuda
    git = (torch.version.git_version or "")[:7]
    return f"{torch.__version__} (git {git}, {'CUDA ' + cuda if cuda else 'CPU only'})"


def provenance(engine: str, precision: str, device: torch.device, threads: int | str | None) -> dict:
    """A run's provenance, the values of its metadata keys (``threads``: the counts its rounds ran at)."""
    return {"engine": engine, "precision": precision, "device": str(device), "threads": threads,
            "torch": torch.__version__, "torch_build": torch_build(), "cpu": cpu_model(),
            "python": platform.python_version()}


def threads_label(counts) -> int | str | None:
    """``{1}`` → ``1``; a run resumed at another thread count: ``{1, 2}`` → ``'1,2'``; no round: None."""
    if len(counts) == 1:
        return next(iter(counts))
    return ",".join(str(c) for c in sorted(counts)) or None
