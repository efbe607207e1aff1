r"""How close to its FLOP limit can an mlp round get on this CPU?  The round as one function of tensors.

The paper's mlp round (mnist shapes, 784 → 64 → 10; k = 25 clients of which k_m = 5 Byzantine,
b = 32; CC τ = 1 against an ROP-like attack, β = 0.9) written in the fewest plain tensor operations:
the 20 benign clients' forward, their weight gradients by ``bmm`` (written out by hand, no
autograd), the momentum step, a Byzantine row from the benign mean and the previous aggregate
(the arithmetic of ROP's Eq. 10–12: a mean, two norms, one scaled difference), CC's clipped mean
(Eq. 3) and the model step.  No diagnostics, no screening of non-finite rows, no registry, no
checks: a lower bound on what byzlab's ``Simulation.step`` can cost with eager PyTorch, and, with
``torch.compile`` (inductor), what compiling the whole round into one graph would give.  Three
compiled variants split the gain: the gradients alone, the rules alone, everything.

    python benchmarks/mlp_ideal.py [--threads 1] [--reps 300] [--repeats 3]

The FLOP limit is measured as ``benchmarks/flop_limit.py`` measures it: the round's FLOPs ÷ the best
fp32 matmul rate of this process, same thread count.  Random data of mnist's shapes.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compile_check import timed  # noqa: E402
from flop_limit import matmul_rate  # noqa: E402

N, K, KB, B, H, C, D_IN = 5000, 25, 20, 32, 64, 10, 784
SHAPES = [(H, D_IN), (H,), (C, H), (C,)]
BETA, TAU, LR, Z = 0.9, 1.0, 0.1, 1.0


def unflat(t: torch.Tensor) -> list[torch.Tensor]:
    out, o = [], 0
    for s in SHAPES:
        n = torch.Size(s).numel()
        out.append(t[..., o:o + n].reshape(*t.shape[:-1], *s))
        o += n
    return out


def gradients(theta, x, y, idx):
    """(KB, d): each benign client's gradient of its mean cross-entropy, by hand."""
    w1, b1, w2, b2 = unflat(theta)
    xb, yb = x[idx].view(KB, B, D_IN), y[idx].view(KB, B)
    h = torch.relu(xb @ w1.T + b1)
    out = h @ w2.T + b2
    dout = (torch.softmax(out, -1) - F.one_hot(yb, C).to(out.dtype)) / B
    dh = (dout @ w2) * (h > 0)
    return torch.cat([torch.bmm(dh.transpose(1, 2), xb).flatten(1), dh.sum(1),
                      torch.bmm(dout.transpose(1, 2), h).flatten(1), dout.sum(1)], 1)


def finish(theta, m, prev, g):
    """Momentum, the Byzantine rows, CC's clipped mean, the step: (θ, momenta, aggregate)."""
    mb = BETA * m[:KB] + (1 - BETA) * g
    mean = mb.mean(0)
    u = prev / prev.norm().clamp_min(1e-12)
    byz = (mean - Z * mean.norm() * u).expand(K - KB, -1)
    rows = torch.cat([mb, byz])
    diff = rows - prev
    w = (TAU / diff.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
    agg = prev + (w * diff).mean(0)
    return theta - LR * agg, rows, agg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=300, help="rounds per timing")
    ap.add_argument("--repeats", type=int, default=3, help="timings per variant (interleaved)")
    args = ap.parse_args()
    for name in ("threads", "reps", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name}: must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(N, D_IN, generator=g), torch.randint(0, C, (N,), generator=g)
    d = sum(torch.Size(s).numel() for s in SHAPES)
    theta = 0.05 * torch.randn(d, generator=g)
    m, prev = 0.01 * torch.randn(K, d, generator=g), 0.01 * torch.randn(d, generator=g)
    idx = torch.randint(0, N, (KB * B,), generator=g)

    rate = matmul_rate()["wall"]
    # FLOPs: forward 2·n·(784·64 + 64·10), weight gradients the same, dh = dout·W2 2·n·10·64
    n = KB * B
    flops = 2 * (2 * n * (D_IN * H + H * C)) + 2 * n * C * H
    limit = flops / rate / 1e6  # ms
    print(f"{args.threads} thread(s), torch {torch.__version__}; matmul {rate:.1f} GFLOP/s; round "
          f"{flops / 1e9:.3f} GFLOP; FLOP limit {limit:.2f} ms; d = {d:,}")

    def round_of(grad_fn, finish_fn):
        return lambda: finish_fn(theta, m, prev, grad_fn(theta, x, y, idx))

    cg, cf = torch.compile(gradients), torch.compile(finish)
    variants = {"eager": round_of(gradients, finish), "gradients compiled": round_of(cg, finish),
                "rules compiled": round_of(gradients, cf), "both compiled": round_of(cg, cf),
                "one graph": None}
    whole = torch.compile(lambda: finish(theta, m, prev, gradients(theta, x, y, idx)))
    variants["one graph"] = whole
    ref = variants["eager"]()[0]
    for name, fn in variants.items():
        t0 = time.perf_counter()
        got = fn()[0]
        first = time.perf_counter() - t0
        rel = float((got - ref).abs().max() / ref.abs().max())
        print(f"- {name}: first call {first:.1f} s; θ's max relative difference from eager {rel:.1e}")
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            times[name].append(timed(fn, args.reps))
    print(f"\n| round ({args.reps} rounds a timing, {args.repeats} timings) | ms (min / median / max) | "
          f"÷ FLOP limit (median) |")
    print("|---|---|---|")
    for name, ts in times.items():
        ts = sorted(ts)
        print(f"| {name} | {ts[0]:.2f} / {ts[len(ts) // 2]:.2f} / {ts[-1]:.2f} | {ts[len(ts) // 2] / limit:.2f} |")
    print(f"\nparts, eager, ms: gather {timed(lambda: x[idx], args.reps):.2f}; forward GEMM "
          f"{timed(lambda: x[idx] @ unflat(theta)[0].T, args.reps):.2f}; one pass over the (k, d) momenta "
          f"{timed(lambda: m * BETA, args.reps):.2f}")


if __name__ == "__main__":
    main()
