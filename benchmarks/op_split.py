"""Where the clients' gradients of a round go, operator by operator, timed without the profiler.

    python benchmarks/op_split.py [--model cnn] [--threads 1] [--rounds 6] [--top 20]

Runs the gradient call of a showcase round (mnist5k, k = 25, k_m = 5, b = 32, CC τ = 1 vs ROP,
β = 0.9; the engine ``auto`` picks, ``fused`` for the cnn and the mlp) ``--rounds`` times after
warm-up, with every ATen operator wrapped in a wall-clock timer (a ``TorchDispatchMode``: a few
microseconds an operator, no profiler: ``torch.profiler``'s own cost per operator weighs most on the
short memory-bound ones, pooling, ``fill_``, ``sum``).

Prints ms per round by operator and input shapes, then by operator: its ms, its FLOPs
(``torch.utils.flop_counter``'s count for each operator call) and the rate they ran at, against the best fp32
matmul rate measured in the same process (``flop_limit.matmul_rate``).
"""
from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

import byzlab

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flop_limit import matmul_rate  # noqa: E402


class OpTimer(TorchDispatchMode):
    """Wall-clock seconds, calls and FLOPs of every ATen operator, by (operator, input shapes).

    The FLOPs are ``torch.utils.flop_counter``'s count for the operator (its ``flop_registry``,
    what ``FlopCounterMode`` uses; that mode's module hooks cannot run inside the fused engine's
    ``autograd.grad`` on recorded outputs)."""

    def __init__(self):
        super().__init__()
        self.seconds: dict[tuple, float] = collections.defaultdict(float)
        self.calls: collections.Counter = collections.Counter()
        self.flops: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        t0 = time.perf_counter()
        out = func(*args, **kwargs)
        dt = time.perf_counter() - t0
        key = (func.overloadpacket.__name__, tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))[:2])
        self.seconds[key] += dt
        self.calls[key] += 1
        if func.overloadpacket in flop_registry:
            self.flops[key] += flop_registry[func.overloadpacket](*args, **kwargs, out_val=out)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cnn", choices=["cnn", "mlp"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    for name in ("threads", "rounds", "top"):
        if getattr(args, name) < 1:
            ap.error(f"--{name}: must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    sim = byzlab.Simulation(dataset="mnist5k", model=args.model, k=25, k_m=5, b=32, beta=0.9, seed=0,
                            aggregator="cc", tau=1.0, attack="rop", device="cpu")
    for _ in range(3):
        sim.step()
    x, y = sim.sample(sim.t + 1)

    def grads():
        return sim.engine(x, y, sim.n_compute, sim.k_b)

    plain = []
    for _ in range(args.rounds + 1):
        t0 = time.perf_counter()
        grads()
        plain.append(time.perf_counter() - t0)
    timer = OpTimer()
    timed = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        with timer:
            grads()
        timed.append(time.perf_counter() - t0)
    flops = collections.Counter()
    for (op, _), n in timer.flops.items():
        flops[op] += n / args.rounds
    rate = matmul_rate()["wall"] * 1e9  # FLOP/s, this process, this thread count

    r = args.rounds
    print(f"{args.model}, mnist5k, CC τ=1 / ROP, {sim.engine_name} engine, {args.threads} thread(s), "
          f"torch {torch.__version__}: the gradient call {1e3 * statistics.median(plain[1:]):.1f} ms "
          f"(median of {r}), {1e3 * statistics.median(timed):.1f} ms with every operator timed, the operators' "
          f"own time {1e3 * sum(timer.seconds.values()) / r:.1f} ms; best fp32 matmul {rate / 1e9:.0f} GFLOP/s")
    print("\n| operator | input shapes | calls a round | ms a round |\n|---|---|---|---|")
    for (op, shapes), s in sorted(timer.seconds.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"| {op} | {' '.join('x'.join(map(str, sh)) for sh in shapes)} | "
              f"{timer.calls[(op, shapes)] // r} | {1e3 * s / r:.2f} |")
    by_op: dict[str, float] = collections.defaultdict(float)
    for (op, _), s in timer.seconds.items():
        by_op[op] += s / r
    total = sum(by_op.values())
    print("\n| operator | ms a round | share | GFLOP a round | GFLOP/s | ÷ best matmul rate |\n|---|---|---|---|---|---|")
    carrying = 0.0
    for op, s in sorted(by_op.items(), key=lambda kv: -kv[1])[: args.top]:
        f = flops.get(op, 0)
        if f:
            carrying += s
        cols = (f"{f / 1e9:.2f}", f"{f / s / 1e9:.0f}", f"{f / s / rate:.2f}") if f else ("", "", "")
        print(f"| {op} | {1e3 * s:.2f} | {s / total:.2f} | " + " | ".join(cols) + " |")
    limit = sum(flops.values()) / rate
    print(f"\nOperators that carry FLOPs: {1e3 * carrying:.1f} ms of {1e3 * total:.1f} ms; all FLOPs "
          f"{sum(flops.values()) / 1e9:.2f} GFLOP = {1e3 * limit:.1f} ms at the best matmul rate "
          f"(the gradients ÷ that limit: {total / limit:.2f}; the FLOP-carrying operators alone {carrying / limit:.2f})")


if __name__ == "__main__":
    main()
