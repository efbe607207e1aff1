"""What the adaptive-strength attacks cost: one round's attack + aggregation, plain vs adaptive.

At the CNN's size (d = 431,080, k = 25 clients of which k_m = 5 Byzantine) on
random momenta, for Centered Clipping (τ = 1) and trimmed mean (f = k_m), each
of ALIE, IPM and ROP is timed as the simulator runs a round: the attack writes
the Byzantine rows of the (k, d) matrix, then the server aggregates it.  The
adaptive attacks get the round context's ``aggregate`` built as
``Simulation._trial`` builds it (the registered rule on copies of its state
and of the RNG), so each of their n_candidates + 1 trial aggregations costs
what it costs in a run.

    python benchmarks/adaptive_cost.py                 # 2 threads, 7 repeats, median
    python benchmarks/adaptive_cost.py --threads 1 --repeats 9 --n-candidates 4

Prints a markdown table: milliseconds per round, median over the repeats after
one warm-up pass, all kinds of round of one rule timed interleaved (one round of
each in turn) so that they share the machine's state; the aggregation alone is
the unit of the cost.  Timings on a shared machine are noisy.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import platform
import statistics
import time
from datetime import datetime, timezone

import torch

import byzlab  # noqa: F401  (registers every rule)
from byzlab.core.registry import AGGREGATORS, ATTACKS, RoundContext

D, K, K_M = 431_080, 25, 5


def trial(rule, params, ctx, states):
    """The round context's ``aggregate``, as the simulator builds it: copies of state and RNG per call."""
    def aggregate(X):
        gen = torch.Generator(device=ctx.generator.device)
        gen.set_state(ctx.generator.get_state())
        st = copy.deepcopy(states)
        c = dataclasses.replace(ctx, generator=gen, state=st)
        return rule(X, params, c)
    return aggregate


class Round:
    """One kind of round (an attack against a rule) on a fixed random (k, d) matrix."""

    def __init__(self, attack: str | None, aggregator: str, agg_params: dict, attack_params: dict, X, prev):
        self.X, self.benign = X, X[: K - K_M]
        self.agg, self.att = AGGREGATORS[aggregator], (ATTACKS[attack] if attack else None)
        self.agg_p = self.agg.resolve(agg_params)
        self.att_p = self.att.resolve(attack_params) if self.att else {}
        self.ctx = RoundContext(t=2, k=K, k_m=K_M, f=K_M, lr=0.1, prev_aggregate=prev, center=prev,
                                generator=torch.Generator().manual_seed(1))

    def __call__(self) -> float:
        t0 = time.perf_counter()
        if self.att is not None:
            actx = dataclasses.replace(self.ctx, state={}, aggregate=trial(self.agg, self.agg_p, self.ctx, {}))
            self.X[K - K_M:] = self.att(self.benign, self.att_p, actx)
        self.agg(self.X, self.agg_p, self.ctx)
        return time.perf_counter() - t0


def time_rule(aggregator: str, agg_params: dict, attacks: list[str], search: dict, repeats: int) -> dict:
    """Median seconds per round of each kind, the kinds timed interleaved (one round of each in turn)."""
    g = torch.Generator().manual_seed(0)
    X = torch.empty(K, D)
    X[: K - K_M] = 2e-3 * torch.randn(K - K_M, D, generator=g) + 5e-4
    X[K - K_M:] = X[: K_M]
    prev = X[: K - K_M].mean(0) + 1e-3 * torch.randn(D, generator=g)
    kinds = {"aggregation only": Round(None, aggregator, agg_params, {}, X, prev)}
    for att in attacks:
        kinds[att] = Round(att, aggregator, agg_params, {}, X, prev)
        kinds[f"{att}_adaptive"] = Round(f"{att}_adaptive", aggregator, agg_params, search, X, prev)
    samples = {name: [] for name in kinds}
    for i in range(repeats + 1):
        for name, run in kinds.items():
            dt = run()
            if i:  # the first pass is a warm-up
                samples[name].append(dt)
    return {name: statistics.median(v) for name, v in samples.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--n-candidates", type=int, default=8)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    search = {"n_candidates": args.n_candidates}
    rules = [("cc", {"tau": 1.0}), ("tm", {})]
    attacks = ["alie", "ipm", "rop"]
    print(f"adaptive attack cost, d = {D:,}, k = {K}, k_m = {K_M}, {args.threads} threads, "
          f"median of {args.repeats}, n_candidates = {args.n_candidates}, refine = 0; "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print("| rule | attack | plain (ms/round) | adaptive (ms/round) | adaptive / plain |")
    print("|---|---|---:|---:|---:|")
    for agg, agg_p in rules:
        med = time_rule(agg, agg_p, attacks, search, args.repeats)
        print(f"| {agg} | (aggregation alone) | {1e3 * med['aggregation only']:.1f} | | |")
        for att in attacks:
            plain, adaptive = med[att], med[f"{att}_adaptive"]
            print(f"| {agg} | {att} | {1e3 * plain:.1f} | {1e3 * adaptive:.1f} | {adaptive / plain:.1f}× |",
                  flush=True)


if __name__ == "__main__":
    main()
