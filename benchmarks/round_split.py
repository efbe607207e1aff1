"""Where a round's time goes, stage by stage, for the showcase's cells (one process, no profiler).

    python benchmarks/round_split.py [--model cnn] [--threads 1] [--rounds 20] [--eval-every 5]

For each of four cells of the showcase (mnist5k, k = 25, k_m = 5, b = 32, β = 0.9: CC τ = 1 vs ROP,
TM vs ALIE, RFA vs ALIE z = 1.2, CC τ = 0.1 without attack) it times ``--rounds`` rounds of
``Simulation.step()`` after warm-up, with wall-clock timers around each stage of Algorithm 1 as the
simulator calls it: sampling, the clients' gradients (the engine), the attack, the screening, the
aggregation (its screening included), the diagnostics; "rest" is the round minus those (momentum,
the θ update, bookkeeping).  The evaluation (``Simulation.evaluate()``, median of 3) is shown per
round at one evaluation every ``--eval-every`` rounds (the showcase: once an epoch, 5 rounds).
Timers are function wrappers, so nothing is synchronised or profiled; milliseconds per round.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import byzlab
from byzlab.core import simulator

CELLS = {
    "CC τ=1 / ROP": dict(aggregator="cc", tau=1.0, attack="rop"),
    "TM / ALIE": dict(aggregator="tm", attack="alie"),
    "RFA / ALIE z=1.2": dict(aggregator="rfa", attack="alie", z=1.2),
    "CC τ=0.1 / none": dict(aggregator="cc", tau=0.1, attack="none"),
}
STAGES = ("sample", "gradients", "attack", "screening", "aggregation", "diagnostics")


class Timers:
    """Wall-clock time spent in wrapped callables, by stage."""

    def __init__(self):
        self.total: dict[str, float] = {}

    def wrap(self, fn, stage: str):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[stage] = self.total.get(stage, 0.0) + time.perf_counter() - t0
        return timed


def split(model: str, cell: dict, rounds: int, warmup: int, eval_every: int) -> dict:
    sim = byzlab.Simulation(dataset="mnist5k", model=model, k=25, k_m=5, b=32, beta=0.9, seed=0,
                            eval_every=10_000, device="cpu", **cell)
    timers = Timers()
    saved = simulator.call, simulator.diagnostics
    sim.sample = timers.wrap(sim.sample, "sample")
    sim.engine = timers.wrap(sim.engine, "gradients")
    sim.chain.screen = timers.wrap(sim.chain.screen, "screening")
    sim.chain.aggregate = timers.wrap(sim.chain.aggregate, "aggregation")
    simulator.call = timers.wrap(simulator.call, "attack")
    simulator.diagnostics = timers.wrap(simulator.diagnostics, "diagnostics")
    try:
        for _ in range(warmup):
            sim.step()
        timers.total.clear()
        t0 = time.perf_counter()
        for _ in range(rounds):
            sim.step()
        wall = time.perf_counter() - t0
    finally:
        simulator.call, simulator.diagnostics = saved
    evals = []
    for _ in range(3):
        t1 = time.perf_counter()
        sim.evaluate()
        evals.append(time.perf_counter() - t1)
    ms = {s: 1e3 * timers.total.get(s, 0.0) / rounds for s in STAGES}
    ms["round"] = 1e3 * wall / rounds
    ms["rest"] = ms["round"] - sum(v for s, v in ms.items() if s in STAGES and s != "screening")
    ms["evaluation / round"] = 1e3 * statistics.median(evals) / eval_every
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cnn", choices=["cnn", "mlp"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--eval-every", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cols = ("round", *STAGES, "rest", "evaluation / round")
    print(f"{args.model}, mnist5k, {args.threads} thread(s), torch {torch.__version__}; ms per round, "
          f"{args.rounds} rounds (aggregation includes its screening)")
    print("| cell | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for name, cell in CELLS.items():
        ms = split(args.model, cell, args.rounds, args.warmup, args.eval_every)
        print(f"| {name} | " + " | ".join(f"{ms[c]:.1f}" if c in ms else "" for c in cols) + " |", flush=True)


if __name__ == "__main__":
    main()
