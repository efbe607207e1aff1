"""What the screening of non-finite reply rows (``non_finite="drop"``, byzlab.core.chain) costs per round.

One process, the paper's cnn on mnist5k (k = 25, k_m = 5, b = 32, β = 0.9): for each
setting two simulations that differ only in the policy — ``propagate`` (the rules see
the matrix as it is: the path before the screening existed) and ``drop`` — step in
turn, the order alternating every round, so both see the same load.  Times are the
process's CPU time (all threads), not wall time.  Reported: the median CPU ms per
round of each over the paired rounds (min/median/max of the per-pair ratio
drop ÷ propagate), and the screening alone (:func:`byzlab.core.chain.screen` on the
round's ``(k, d)`` matrix into the run's buffer).

    python benchmarks/screening_cost.py --rounds 20
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import byzlab
from byzlab.core.chain import screen
from byzlab.core.data import load_dataset

SETTINGS = {
    "rop+cc": dict(attack="rop", aggregator="cc", tau=0.1),
    "alie+tm": dict(attack="alie", aggregator="tm"),
}


def timed(fn) -> float:
    """CPU seconds of this process (all its threads) spent in ``fn()``: on a shared machine, time
    other processes take does not count, as it would in wall time."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("--rounds", 20), ("--warmup", 3), ("--threads", 2)):
        ap.add_argument(flag, type=int, default=default)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist5k")
    for name, kw in SETTINGS.items():
        sims = {policy: byzlab.Simulation(dataset=data, beta=0.9, seed=0, eval_every=10_000, non_finite=policy, **kw)
                for policy in ("propagate", "drop")}
        times: dict[str, list[float]] = {"propagate": [], "drop": []}
        for i in range(args.warmup + args.rounds):
            order = ("propagate", "drop") if i % 2 else ("drop", "propagate")
            for policy in order:
                t = timed(sims[policy].step)
                if i >= args.warmup:
                    times[policy].append(t)
        drop = sims["drop"]
        alone = [timed(lambda: screen(drop.X, drop.chain.fill, drop.prev_aggregate, out=drop.screened))
                 for _ in range(args.rounds)]
        ratios = sorted(d / p for d, p in zip(times["drop"], times["propagate"]))
        med = {p: 1000 * statistics.median(t) for p, t in times.items()}
        print(f"{name}\tpropagate {med['propagate']:.1f} CPU ms/round\tdrop {med['drop']:.1f} CPU ms/round\t"
              f"drop/propagate per pair min {ratios[0]:.3f} median {statistics.median(ratios):.3f} "
              f"max {ratios[-1]:.3f}\tscreening alone {1000 * statistics.median(alone):.1f} CPU ms "
              f"(fill {drop.chain.fill!r}, d = {drop.d:,}, {args.rounds} paired rounds, "
              f"{torch.get_num_threads()} threads)", flush=True)


if __name__ == "__main__":
    main()
