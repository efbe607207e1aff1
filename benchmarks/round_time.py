"""Median wall time of one round of Algorithm 1 for a few settings (the paper's cnn on mnist5k).

A before/after check for a change to the per-round path: run it on both
checkouts, alternating, in one session on an otherwise idle machine::

    for i in 1 2 3; do
        PYTHONPATH=/path/to/old python benchmarks/round_time.py --label before
        python benchmarks/round_time.py --label after
    done

and compare the medians of the same setting (ratios, not absolute times).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import byzlab
from byzlab.core.batched import BatchedSimulation
from byzlab.core.data import load_dataset

SETTINGS = {
    "rop+cc": dict(attack="rop", aggregator="cc", tau=0.1),
    "alie+tm": dict(attack="alie", aggregator="tm"),
    "alie+nnm+cc": dict(attack="alie", aggregator="cc", pre_aggregators=["nnm"]),
    "ipm+krum": dict(attack="ipm", aggregator="krum"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist5k")
    for name, kw in SETTINGS.items():
        sim = byzlab.Simulation(dataset=data, beta=0.9, seed=0, eval_every=10_000, **kw)
        times = []
        for i in range(args.warmup + args.rounds):
            t0 = time.perf_counter()
            sim.step()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        report(args, name, times)
    # two runs in one batched job, one round at a time through advance() (the path a sweep job takes)
    bsim = BatchedSimulation([byzlab.RunConfig.make(beta=0.9, seed=s, eval_every=10_000, **SETTINGS["rop+cc"])
                              for s in (0, 1)], dataset=data)
    times = []
    for i in range(args.warmup + args.rounds):
        t0 = time.perf_counter()
        bsim.advance(1)
        if i >= args.warmup:
            times.append((time.perf_counter() - t0) / 2)
    report(args, "batched R=2 rop+cc (per run)", times)


def report(args, name: str, times: list[float]) -> None:
    print(f"{args.label}\t{name}\t{1000 * statistics.median(times):.1f} ms/round "
          f"(min {1000 * min(times):.1f}, {args.rounds} rounds, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
