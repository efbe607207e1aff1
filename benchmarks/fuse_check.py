"""What fusing the passes after the gradients would buy: CC and the diagnostics eager against compiled.

    python benchmarks/fuse_check.py [--threads 1] [--reps 30]

A round of the mlp spends more time in memory-bound passes over the ``(k, d)`` momentum matrix
(momentum, attack, screening, CC, diagnostics) than in its GEMMs (RESULTS.md).  This measures, for
k = 25 rows at the mlp's and the cnn's d (50,890 and 431,080), on rows like a round's (benign
momenta around a common direction, five ROP-like rows, m̃_{t−1} nearby), one thread:

* the whole post-gradient part of a real round, ``Simulation.finish_round`` (CC τ = 1 against ROP,
  β = 0.9, diagnostics on), eager — the share that fusing could at best remove;
* ``centered_clip`` (CC, one iteration, τ = 1) and ``chain.diagnostics`` eager, and the same functions compiled by
  ``torch.compile`` (inductor, ``dynamic=False``): time of a call (``torch.utils.benchmark``), the first
  compiled call's time, and the largest relative difference of the outputs (a compiled reduction adds
  in another order, so the numbers are not the eager ones bit for bit).

Nothing of this is used by byzlab's runs; it sizes the route.
"""
from __future__ import annotations

import argparse
import time

import torch

import byzlab
from byzlab.core.aggregators import centered_clip
from byzlab.core.chain import diagnostics
from compile_check import timed  # this folder's timer (torch.utils.benchmark)


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b| ÷ max |a| over the finite entries of ``a`` (0 when equal)."""
    ok = torch.isfinite(a) & torch.isfinite(b)
    scale = a[ok].abs().max().clamp_min(1e-30)
    return float((a[ok] - b[ok]).abs().max() / scale)


def round_like(d: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(X, m̃_{t−1}, Δ_{t−1})``: 20 benign rows around a direction, 5 identical attack rows, a centre."""
    direction = torch.randn(d, generator=g) * 1e-3
    x = direction + 3e-4 * torch.randn(25, d, generator=g)
    x[20:] = direction - 2e-3 * torch.randn(d, generator=g)
    prev = direction + 1e-4 * torch.randn(d, generator=g)
    return x, prev, 1e-3 * torch.randn(d, generator=g)


def finish_round_ms(model: str, rounds: int) -> float:
    """Median ms of ``Simulation.finish_round`` in a real mnist5k run (CC τ = 1 vs ROP, β = 0.9)."""
    cfg = byzlab.RunConfig.make(dataset="mnist5k", model=model, attack="rop", aggregator="cc", tau=1.0,
                                beta=0.9, epochs=100)
    sim = byzlab.Simulation(cfg)
    for _ in range(3):
        sim.step()
    x, y = sim.sample(sim.t + 1)
    grads, losses = sim.engine(x, y, sim.n_compute, sim.k_b)
    for _ in range(5):  # warm-up: the rules' first calls
        sim.finish_round(grads, losses)
    return timed(lambda: sim.finish_round(grads, losses), rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    print(f"{args.threads} thread(s), torch {torch.__version__}; ms a call, {args.reps} calls")
    for model in ("mlp", "cnn"):
        print(f"- {model}: Simulation.finish_round (CC τ = 1 vs ROP, diagnostics on) "
              f"{finish_round_ms(model, 3 * args.reps):.2f} ms, eager ({3 * args.reps} calls)")
    print("| part | d | eager ms | first compiled call, s | compiled ms | compiled ÷ eager | max rel. difference |")
    print("|---|---|---|---|---|---|---|")
    for d in (50_890, 431_080):
        x, prev, prev_delta = round_like(d, g)
        parts = {
            "cc (τ = 1)": lambda x=x, prev=prev: centered_clip(x, prev, 1.0),
            "diagnostics": lambda x=x, prev=prev, pd=prev_delta: torch.cat(
                [t.reshape(-1) for t in diagnostics(x, 20, prev, prev, pd, 1.0)]),
        }
        for name, fn in parts.items():
            compiled = torch.compile(fn, dynamic=False, fullgraph=False)
            t0 = time.perf_counter()
            out_c = compiled()
            first = time.perf_counter() - t0
            out_e = fn()
            eager, fused = timed(fn, args.reps), timed(compiled, args.reps)
            print(f"| {name} | {d:,} | {eager:.2f} | {first:.1f} | {fused:.2f} | {fused / eager:.2f} | "
                  f"{rel_diff(out_e, out_c):.1e} |", flush=True)


if __name__ == "__main__":
    main()
