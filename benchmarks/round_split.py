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

The last column, "gradients + evaluation share", is the part of a cell's time (rounds with their
evaluations) spent in the model's forward and backward passes: the clients' gradients and the
evaluation's forward pass of the test set.  The line under the table gives the same share over the
four cells together: what the cells would take, as a fraction of their time now, if every other
stage (sampling, attack, screening, aggregation, diagnostics, momentum, the θ update) took no time.
Multiplied by the showcase's measured time now ÷ its base (``showcase_e2e.sh``), it is a lower bound
on what any change to those other stages can bring the showcase to.  No round can do less than update
the benign momenta (reading the gradients and the momenta, writing the momenta) and read the matrix
once to aggregate it: the last line times those two passes over the cnn's (k, d) matrix
(``lerp_`` and a row sum) and adds them to the gradients and the evaluation, a floor for the cells.

Run it as a sweep's jobs run (``BYZLAB_COMPILE=1``: TM's comparator network compiled); with
``BYZLAB_COMPILE=0`` or unset the TM cell runs the eager network.
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
    ms["cell"] = ms["round"] + ms["evaluation / round"]
    ms["passes"] = ms["gradients"] + ms["evaluation / round"]
    ms["gradients + evaluation share"] = ms["passes"] / ms["cell"]
    return ms


def memory_passes(model: str, reps: int = 20) -> float:
    """ms of the two passes every round makes over the (k, d) matrix: the momentum update and one read."""
    sim = byzlab.Simulation(dataset="mnist5k", model=model, k=25, k_m=5, b=32, beta=0.9, seed=0, device="cpu")
    x, g = torch.randn(sim.k, sim.d), torch.randn(sim.k, sim.d)
    times = []
    for _ in range(reps + 2):
        t0 = time.perf_counter()
        x[: sim.k_b].lerp_(g[: sim.k_b], 0.1)
        x.sum(1)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times[2:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cnn", choices=["cnn", "mlp"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--eval-every", type=int, default=5)
    args = ap.parse_args()
    for name in ("threads", "rounds", "eval_every"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        ap.error(f"--warmup: must be >= 0, got {args.warmup}")
    torch.set_num_threads(args.threads)
    cols = ("round", *STAGES, "rest", "evaluation / round", "gradients + evaluation share")
    print(f"{args.model}, mnist5k, {args.threads} thread(s), torch {torch.__version__}; ms per round, "
          f"{args.rounds} rounds (aggregation includes its screening)")
    print("| cell | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    cells = []
    for name, cell in CELLS.items():
        ms = split(args.model, cell, args.rounds, args.warmup, args.eval_every)
        cells.append(ms)
        print(f"| {name} | " + " | ".join(f"{ms[c]:.2f}" if c.endswith("share") else f"{ms[c]:.1f}"
                                          for c in cols) + " |", flush=True)
    passes, total = sum(c["passes"] for c in cells), sum(c["cell"] for c in cells)
    print(f"\nThe four cells, rounds with an evaluation every {args.eval_every}: {total:.1f} ms, of which the "
          f"gradients and the evaluation {passes:.1f} ms = {passes / total:.3f} of the cells' time")
    two = memory_passes(args.model)
    floor = passes + 4 * two
    print(f"The momentum update and one read of the (k, d) matrix: {two:.1f} ms a round; with them in each cell, "
          f"{floor:.1f} ms = {floor / total:.3f} of the cells' time")


if __name__ == "__main__":
    main()
