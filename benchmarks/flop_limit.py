"""A round of Algorithm 1 against the machine's FLOP limit, per gradient engine, in one process.

For each model (the paper's cnn on mnist5k, the mlp on mnist5k, ResNet-20 on
CIFAR-10-shaped data) at the paper's setting (k = 25, k_m = 5, b = 32, CC τ = 1
against ROP, β = 0.9), this measures, in ONE process at ONE thread count:

* the machine's best fp32 matrix-multiply rate (GFLOP/s; square matrices of
  512, 1024 and 2048, best of several repetitions, measured at the start and at
  the end of the run, the larger kept);
* the round's gradient work: the FLOPs of the clients' forward and backward on
  the round's own batch, counted by ``torch.utils.flop_counter.FlopCounterMode``;
* the FLOP limit of a round = FLOPs ÷ best rate, and the median wall time of
  ``Simulation.step()`` per engine (after warm-up rounds; engines interleaved,
  ``--reps`` blocks of ``--rounds`` rounds each), as a multiple of that limit.

Ratios, not absolute times, are the figure to read: both numbers come from the
same process on the same cores.  ResNet-20 uses random data of CIFAR-10's shape
(3×32×32, 10 classes, 5,000 training images, crop + flip augmentation) when the
real data set is not on disk.  Engines the checkout does not know are skipped,
so the script runs unchanged on an older commit (before/after).

    python benchmarks/flop_limit.py --threads 1
    python benchmarks/flop_limit.py --threads 2 --models cnn,mlp --markdown out.md
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import byzlab
from byzlab.data import Dataset, load_dataset
from byzlab.errors import ConfigError
from byzlab.provenance import cpu_model

MODELS = {  # model -> (data set, stand-in shape and classes when the data set is not on disk)
    "cnn": ("mnist5k", None),
    "mlp": ("mnist5k", None),
    "resnet20": ("cifar10", ((3, 32, 32), 10)),
}
SETTING = dict(k=25, k_m=5, b=32, attack="rop", aggregator="cc", tau=1.0, beta=0.9, seed=0, eval_every=10_000)
ENGINES = ("loop", "vmap", "fused")


def matmul_rate(sizes=(512, 1024, 2048), reps: int = 5) -> float:
    """The best fp32 matmul rate (GFLOP/s) over a few square sizes."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        inner = max(1, int(2e9 // (2 * n ** 3)))
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(inner):
                a @ b
            best = max(best, 2 * n ** 3 * inner / (time.perf_counter() - t0) / 1e9)
    return best


def dataset_for(model: str) -> Dataset:
    name, standin = MODELS[model]
    try:
        return load_dataset(name, download=False)
    except Exception:  # not on disk (no network): random data of the real shape
        shape, classes = standin
        g = torch.Generator().manual_seed(0)
        return Dataset(f"{name}-shaped", torch.randn(5000, *shape, generator=g),
                       torch.randint(0, classes, (5000,), generator=g), torch.randn(500, *shape, generator=g),
                       torch.randint(0, classes, (500,), generator=g), classes, augment=True,
                       default_model=model, pad_value=0.0)


def round_flops(sim) -> int:
    """FLOPs of the clients' forward + backward on the round's own batch (the loop engine's graph)."""
    from torch.utils.flop_counter import FlopCounterMode

    state = sim.generator.get_state()
    x, y = sim.sample(sim.t + 1)
    sim.generator.set_state(state)  # the run's own draws stay untouched
    n, b = sim.n_compute, x.shape[0] // sim.n_compute
    counter = FlopCounterMode(display=False)
    with counter:
        for i in range(n):
            loss = torch.nn.functional.cross_entropy(sim.model(x[i * b:(i + 1) * b]), y[i * b:(i + 1) * b])
            torch.autograd.grad(loss, list(sim.model.parameters()))
    return counter.get_total_flops()


def make_sims(model: str, data: Dataset, engines) -> dict:
    sims = {}
    for engine in engines:
        try:
            t0 = time.perf_counter()
            sim = byzlab.Simulation(dataset=data, model=model, engine=engine, device="cpu", **SETTING)
            sim.step()  # the first round (and any one-off set-up)
            sim.setup_seconds = time.perf_counter() - t0
        except ConfigError as e:
            print(f"  {model}: engine {engine} skipped ({e})")
            continue
        if sim.engine_name != engine:
            continue
        sims[engine] = sim
    return sims


def measure(model: str, rounds: int, warmup: int, reps: int, engines) -> dict:
    data = dataset_for(model)
    sims = make_sims(model, data, engines)
    flops = round_flops(next(iter(sims.values())))
    for sim in sims.values():
        for _ in range(warmup):
            sim.step()
    blocks = {e: [] for e in sims}
    for _ in range(reps):  # engines interleaved, one block of rounds each in turn
        for e, sim in sims.items():
            ts = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                sim.step()
                ts.append(time.perf_counter() - t0)
            blocks[e].append(statistics.median(ts))
    return {"model": model, "data": data.name, "flops": flops, "d": next(iter(sims.values())).d,
            "blocks": blocks, "setup": {e: s.setup_seconds for e, s in sims.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="cnn,mlp,resnet20")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--rounds", type=int, default=7, help="rounds per timed block")
    ap.add_argument("--reps", type=int, default=3, help="timed blocks per engine (interleaved)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--label", default="")
    ap.add_argument("--json", default=None, help="also write every number to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    engines = args.engines.split(",")
    rate0 = matmul_rate()
    results = [measure(m, args.rounds, args.warmup, args.reps, engines) for m in args.models.split(",")]
    rate = max(rate0, matmul_rate())
    info = {"label": args.label, "date": time.strftime("%Y-%m-%d", time.gmtime()), "cpu": cpu_model(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "matmul_gflops": rate,
            "results": results}
    print(f"{args.label}  {info['date']}, {info['cpu']}, torch {info['torch']}, {info['threads']} thread(s): "
          f"best fp32 matmul {rate:.0f} GFLOP/s")
    print("| model | GFLOP/round | FLOP limit (ms) | engine | ms/round min / median / max | ÷ limit (median) | first round (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        limit = r["flops"] / (rate * 1e9)
        for e, b in r["blocks"].items():
            ms = [1e3 * t for t in b]
            print(f"| {r['model']} | {r['flops'] / 1e9:.2f} | {1e3 * limit:.1f} | {e} | "
                  f"{min(ms):.1f} / {statistics.median(ms):.1f} / {max(ms):.1f} | "
                  f"{statistics.median(b) / limit:.2f} | {r['setup'][e]:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
