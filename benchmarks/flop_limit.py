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

    python benchmarks/flop_limit.py --threads 1 --json benchmarks/measured/flop_limit-1t.json
    python benchmarks/flop_limit.py --threads 2 --models cnn,mlp --json benchmarks/measured/flop_limit-2t.json
    python benchmarks/flop_limit.py --render benchmarks/measured/flop_limit-2026-12-04-*.json --readme README.md

``--render`` summarises saved invocations (each a ``--json`` file) in one table: per
label, thread count, model and engine, the min / median / max over invocations of
each invocation's median, on the CPU-time clock; ``--readme`` writes that table into
the README between its ``flop-limit`` markers.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import byzlab
from byzlab.core.data import Dataset, load_dataset
from byzlab.core.errors import ConfigError
from byzlab.core.provenance import cpu_model

MODELS = {  # model -> (data set, stand-in shape and classes when the data set is not on disk)
    "cnn": ("mnist5k", None),
    "mlp": ("mnist5k", None),
    "resnet20": ("cifar10", ((3, 32, 32), 10)),
}
SETTING = dict(k=25, k_m=5, b=32, attack="rop", aggregator="cc", tau=1.0, beta=0.9, seed=0, eval_every=10_000)
ENGINES = ("loop", "vmap", "fused")


class Clock:
    """Wall time and this process's CPU time (all its threads) of a block, per thread."""

    def __init__(self):
        self.threads = torch.get_num_threads()

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = (time.process_time() - self.c0) / self.threads  # CPU seconds per thread


def matmul_rate(sizes=(512, 1024, 2048), reps: int = 5, dtype=torch.float32) -> dict:
    """The best matmul rate (GFLOP/s; fp32 unless ``dtype``) over a few square sizes, by wall and by CPU time
    per thread."""
    best = {"wall": 0.0, "cpu": 0.0}
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        inner = max(1, int(2e9 // (2 * n ** 3)))
        for _ in range(reps):
            with Clock() as c:
                for _ in range(inner):
                    a @ b
            for kind in best:
                best[kind] = max(best[kind], 2 * n ** 3 * inner / getattr(c, kind) / 1e9)
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
    """One simulation per engine name; ``fused:bf16`` is the fused engine with bf16 autocast."""
    sims = {}
    for name in engines:
        engine, _, precision = name.partition(":")
        try:
            t0 = time.perf_counter()
            sim = byzlab.Simulation(dataset=data, model=model, engine=engine, device="cpu",
                                    **SETTING, **({"precision": precision} if precision else {}))
            sim.step()  # the first round (and any one-off set-up)
            sim.setup_seconds = time.perf_counter() - t0
        except ConfigError as e:
            print(f"  {model}: engine {engine} skipped ({e})")
            continue
        if sim.engine_name != engine:
            continue
        sims[name] = sim
    return sims


def measure(model: str, rounds: int, warmup: int, reps: int, engines, profile_rounds: int = 0) -> dict:
    data = dataset_for(model)
    sims = make_sims(model, data, engines)
    flops = round_flops(next(iter(sims.values())))
    for sim in sims.values():
        for _ in range(warmup):
            sim.step()
    blocks = {kind: {e: [] for e in sims} for kind in ("wall", "cpu")}
    for _ in range(reps):  # engines interleaved, one block of rounds each in turn
        for e, sim in sims.items():
            ts = {"wall": [], "cpu": []}
            for _ in range(rounds):
                with Clock() as c:
                    sim.step()
                ts["wall"].append(c.wall)
                ts["cpu"].append(c.cpu)
            for kind in ts:
                blocks[kind][e].append(statistics.median(ts[kind]))
    out = {"model": model, "data": data.name, "flops": flops, "d": next(iter(sims.values())).d,
           "blocks": blocks, "setup": {e: s.setup_seconds for e, s in sims.items()}}
    if profile_rounds:
        out["profile"] = {e: kernel_profile(sim, profile_rounds) for e, sim in sims.items()}
    return out


def kernel_profile(sim, rounds: int, top: int = 10) -> list[dict]:
    """The operators that take a round's time: self CPU ms per round, share, and GFLOP/s where counted."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for _ in range(rounds):
            sim.step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    rows = []
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        us = e.self_cpu_time_total
        rows.append({"op": e.key, "ms_per_round": us / 1e3 / rounds, "share": us / total,
                     "gflops": (e.flops / (us * 1e3)) if e.flops and us else None})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="cnn,mlp,resnet20")
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help="comma-separated; ENGINE:bf16 runs that engine under bf16 autocast (the limit stays fp32's)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds per timed block")
    ap.add_argument("--reps", type=int, default=3, help="timed blocks per engine (interleaved)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--label", default="")
    ap.add_argument("--profile", type=int, default=0, metavar="ROUNDS",
                    help="also profile ROUNDS rounds per engine: the operators taking the time, their GFLOP/s")
    ap.add_argument("--json", default=None, help="also write every number to this file")
    ap.add_argument("--render", nargs="+", default=None, metavar="JSON", help="summarise saved invocations")
    ap.add_argument("--readme", nargs="+", default=None, metavar="FILE",
                    help="with --render: rewrite the flop-limit block of these files")
    args = ap.parse_args()
    if args.render:
        text = summary([json.load(open(f)) for f in args.render])
        print(text)
        for path in args.readme or ():
            write_block(path, text)
        return
    torch.set_num_threads(args.threads)
    engines = args.engines.split(",")
    rate0 = matmul_rate()
    results = [measure(m, args.rounds, args.warmup, args.reps, engines, args.profile)
               for m in args.models.split(",")]
    rate1 = matmul_rate()
    rate = {kind: max(rate0[kind], rate1[kind]) for kind in rate0}
    extra = {"matmul_gflops_bf16": matmul_rate(dtype=torch.bfloat16)} if any(":bf16" in e for e in engines) else {}
    info = {**extra, "label": args.label, "date": time.strftime("%Y-%m-%d", time.gmtime()), "cpu": cpu_model(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "matmul_gflops": rate,
            "results": results}
    print(table(info))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=1)


def table(info: dict) -> str:
    """The markdown table of one invocation: per model and engine, ms per round and its multiple of the limit.

    Two clocks: wall time, and this process's CPU time per thread (on a machine shared with
    other jobs, CPU time leaves out the time the process waited for a core; both the round
    and the matmul rate are measured on the same clock).
    """
    rate = info["matmul_gflops"]
    lines = [f"{info['label']}  {info['date']}, {info['cpu']}, torch {info['torch']}, {info['threads']} thread(s): "
             f"best fp32 matmul {rate['wall']:.0f} GFLOP/s (wall), {rate['cpu']:.0f} (CPU time)"
             + (f"; bf16 {info['matmul_gflops_bf16']['wall']:.0f} (wall), {info['matmul_gflops_bf16']['cpu']:.0f} "
                f"(CPU time)" if "matmul_gflops_bf16" in info else ""),
             "| model | GFLOP/round | engine | wall ms/round min / median / max | ÷ FLOP limit (wall) "
             "| CPU ms/round min / median / max | ÷ FLOP limit (CPU time) |",
             "|---|---|---|---|---|---|---|"]
    for r in info["results"]:
        for e in r["blocks"]["wall"]:
            cells = []
            for kind in ("wall", "cpu"):
                b = r["blocks"][kind][e]
                limit = r["flops"] / (rate[kind] * 1e9)
                cells.append(f"{1e3 * min(b):.1f} / {1e3 * statistics.median(b):.1f} / {1e3 * max(b):.1f} | "
                             f"{statistics.median(b) / limit:.2f}")
            lines.append(f"| {r['model']} | {r['flops'] / 1e9:.2f} | {e} | {cells[0]} | {cells[1]} |")
    for r in info["results"]:
        for e, rows in r.get("profile", {}).items():
            lines += ["", f"{r['model']}, engine {e}: operators by self CPU time (profiler, {info['threads']} thread(s))",
                      "| operator | ms/round | share | GFLOP/s |", "|---|---|---|---|"]
            lines += [f"| `{x['op']}` | {x['ms_per_round']:.1f} | {100 * x['share']:.0f} % | "
                      f"{'' if x['gflops'] is None else format(x['gflops'], '.0f')} |" for x in rows]
    return "\n".join(lines)


BEGIN, END = "<!-- flop-limit:begin -->", "<!-- flop-limit:end -->"


def summary(infos: list[dict]) -> str:
    """One table over several invocations, both clocks: min / median / max of their medians."""
    groups: dict = {}
    for info in infos:
        for r in info["results"]:
            for e in r["blocks"]["cpu"]:
                g = groups.setdefault((info["label"], info["threads"], r["model"], e),
                                      {"wall": [], "cpu": [], "xwall": [], "xcpu": [], "r": r})
                for kind in ("wall", "cpu"):
                    b = r["blocks"][kind][e]
                    g[kind].append(1e3 * statistics.median(b))
                    g["x" + kind].append(statistics.median(b) / (r["flops"] / (info["matmul_gflops"][kind] * 1e9)))
    first = infos[0]
    dates = sorted({i["date"] for i in infos})
    lines = [f"{', '.join(dates)}; {first['cpu']}; torch {first['torch']}; "
             f"`python benchmarks/flop_limit.py` ({len(infos)} invocations, `--render`). "
             "FLOP limit = the round's forward + backward FLOPs (`torch.utils.flop_counter` on the round's "
             "own batch) ÷ the best fp32 matmul rate of the same invocation, both on the same clock: wall "
             "time, and the process's CPU time per thread (on a shared machine it leaves out the waits "
             "for a core; at 2 threads it counts a thread's spinning while the other waits, so read the "
             "wall clock there); min / median / max over invocations of each one's median round.", "",
             "| checkout | threads | model | GFLOP/round | engine | wall ms/round | ÷ limit (wall) "
             "| CPU ms/round | ÷ limit (CPU time) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (label, threads, model, e), g in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][2], "before" not in kv[0][0], kv[0][3])):
        cells = []
        for key, fmt in (("wall", ".0f"), ("xwall", ".2f"), ("cpu", ".0f"), ("xcpu", ".2f")):
            v = sorted(g[key])
            cells.append(" / ".join(format(a, fmt) for a in (v[0], statistics.median(v), v[-1])))
        lines.append(f"| {label} | {threads} | {model} | {g['r']['flops'] / 1e9:.2f} | {e} | {' | '.join(cells)} |")
    return "\n".join(lines)


def write_block(path: str, text: str) -> None:
    """Replace the text between the flop-limit markers of ``path``."""
    with open(path) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} block")
    head, rest = doc.split(BEGIN, 1)
    with open(path, "w") as f:
        f.write(head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1])


if __name__ == "__main__":
    main()
