"""The comparator network eager against compiled (``byzlab.core.kernels.rank_sum``), in one process.

    python benchmarks/compile_check.py [--threads 1] [--reps 20]

For TM (k = 25, f = 5) and CM (k = 25) at the mlp's and the cnn's d (50,890 and 431,080), on
Gaussian rows: the first compiled call (which compiles, unless inductor's on-disk cache has the
kernel), then the time of ``--reps`` calls of each path (``torch.utils.benchmark``), and whether the two results are bit for
bit equal.  The eager path is the blocked network (``BYZLAB_COMPILE=0``), the compiled one ``BYZLAB_COMPILE=1``.
"""
from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.benchmark import Timer

from byzlab.core.aggregators import median, trimmed_mean


def timed(fn, reps: int) -> float:
    """Median milliseconds of ``fn()`` over ``reps`` calls (``torch.utils.benchmark``)."""
    return 1e3 * Timer("fn()", globals={"fn": fn}).timeit(reps).median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    print(f"{args.threads} thread(s), torch {torch.__version__}; ms a call, {args.reps} calls")
    print("| rule | d | first compiled call, s | eager ms | compiled ms | compiled ÷ eager | bit for bit |")
    print("|---|---|---|---|---|---|---|")
    os.environ["BYZLAB_COMPILE"] = "1"
    for d in (50_890, 431_080):
        x = torch.randn(25, d, generator=g)
        for name, rule in (("TM f=5", lambda: trimmed_mean(x, 5)), ("CM", lambda: median(x))):
            t0 = time.perf_counter()
            compiled = rule()
            first = time.perf_counter() - t0
            c = timed(rule, args.reps)
            os.environ["BYZLAB_COMPILE"] = "0"
            try:
                eager = rule()
                e = timed(rule, args.reps)
            finally:
                os.environ["BYZLAB_COMPILE"] = "1"
            print(f"| {name} | {d:,} | {first:.1f} | {e:.2f} | {c:.2f} | {c / e:.2f} | {torch.equal(compiled, eager)} |",
                  flush=True)


if __name__ == "__main__":
    main()
