#!/usr/bin/env python
r"""Mixed precision against fp32: final accuracy and seconds per round.

Trains the same short runs (same seeds, same sampling) in fp32 and in each
reduced precision (``bf16``: autocast of the forward pass to bfloat16, on CPU or
CUDA; ``tf32``: TensorFloat-32 matmuls and convolutions, CUDA only) and checks
that every reduced-precision run ends within ``--tolerance`` points of test
accuracy of its fp32 twin.  Defaults: the embedded ``mnist5k`` (cnn, no download),
ROP against CC τ = 1 and ALIE against TM, β = 0.9, 3 seeds, 20 epochs.

Usage::

    python benchmarks/precision_check.py                          # CPU: fp32 vs bf16
    python benchmarks/precision_check.py --device cuda --precisions bf16,tf32 --epochs 50

Exit status 1 if any run misses the tolerance.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

import byzlab
from byzlab import RunConfig
from byzlab.core.data import load_dataset


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precisions", default="bf16", help="comma-separated, compared with fp32: bf16, tf32")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--tolerance", type=float, default=1.0, help="allowed loss of final test accuracy, points")
    args = ap.parse_args(argv)

    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if "tf32" in precisions and not args.device.startswith("cuda"):
        ap.error("--precisions tf32: TensorFloat-32 exists on CUDA only")
    data = load_dataset(args.dataset)
    settings = [dict(attack="rop", aggregator="cc", tau=1.0), dict(attack="alie", aggregator="tm")]
    print(f"{args.dataset}, {args.epochs} epochs, device {args.device}, torch {torch.__version__}")
    print("| setting | seed | " + " | ".join(f"{p} acc %" for p in ["fp32", *precisions])
          + " | " + " | ".join(f"{p} s/round" for p in ["fp32", *precisions]) + " |")
    print("|---" * (2 + 2 * (1 + len(precisions))) + "|")
    failures, gaps = 0, {p: [] for p in precisions}
    for kw in settings:
        for seed in (int(s) for s in args.seeds.split(",")):
            cfg = RunConfig.make(dataset=args.dataset, epochs=args.epochs, seed=seed, beta=0.9,
                                 device=args.device, **kw)
            res = {p: byzlab.run(cfg.replace(precision=p), dataset=data) for p in ["fp32", *precisions]}
            acc = {p: r.final_accuracy for p, r in res.items()}
            per_round = {p: r.history["wall_time"].iloc[-1] / r.history["round"].iloc[-1] for p, r in res.items()}
            for p in precisions:
                gaps[p].append(acc["fp32"] - acc[p])
                failures += acc[p] < acc["fp32"] - args.tolerance
            print(f"| {kw['attack']} vs {kw['aggregator']} | {seed} | "
                  + " | ".join(f"{acc[p]:.2f}" for p in acc) + " | "
                  + " | ".join(f"{per_round[p]:.4f}" for p in per_round) + " |", flush=True)
    for p, g in gaps.items():
        print(f"{p}: fp32 − {p} accuracy, mean {statistics.mean(g):+.2f}, worst {max(g):+.2f} points "
              f"(tolerance {args.tolerance})")
    print("PASS" if not failures else f"FAIL: {failures} run(s) beyond the tolerance")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
