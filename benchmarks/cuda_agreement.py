#!/usr/bin/env python
"""The same run on CPU and on CUDA, per gradient engine: how far θ drifts apart, round by round.

Same config, same seed: the draws (initial model, partition, mini-batches, the
rules' random choices) come from the CPU generator on either device
(:mod:`byzlab.core.draws`), so the two runs differ only by the devices' float
arithmetic.  Prints, per engine and attack/aggregator pair, max |θ_cuda − θ_cpu| ÷ max |θ_cpu|
after rounds 1, 10 and ``--rounds``, and both final accuracies::

    python benchmarks/cuda_agreement.py --rounds 50
"""
from __future__ import annotations

import argparse

import torch

from byzlab import RunConfig, Simulation
from byzlab.core.data import load_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--dataset", default="mnist5k")
    args = ap.parse_args()
    data = load_dataset(args.dataset)
    print(f"{args.dataset}, torch {torch.__version__}, {torch.cuda.get_device_name()}")
    marks = sorted({1, min(10, args.rounds), args.rounds})
    print("| engine | attack vs aggregator | " + " | ".join(f"rel. drift round {t}" for t in marks)
          + " | acc CPU | acc CUDA |")
    print("|---" * (4 + len(marks)) + "|")
    for engine in ("loop", "vmap", "fused"):
        for attack, aggregator in (("rop", "cc"), ("alie", "tm"), ("ipm", "rfa")):
            cfg = RunConfig.make(dataset=args.dataset, k=25, k_m=5, b=32, beta=0.9, seed=0, engine=engine,
                                 attack=attack, aggregator=aggregator, epochs=10_000)
            sims = {dev: Simulation(cfg.replace(device=dev), dataset=data) for dev in ("cpu", "cuda")}
            drift = {}
            for t in range(1, args.rounds + 1):
                for s in sims.values():
                    s.step()
                if t in marks:
                    a, b = sims["cpu"].theta, sims["cuda"].theta.cpu()
                    drift[t] = float((a - b).abs().max() / a.abs().max())
            acc = {dev: s.evaluate() for dev, s in sims.items()}
            print(f"| {engine} | {attack} vs {aggregator} | " + " | ".join(f"{drift[t]:.1e}" for t in sorted(drift))
                  + f" | {acc['cpu']:.2f} | {acc['cuda']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
