#!/usr/bin/env python
r"""Speed of one round of Algorithm 1: byzlab against the floor and a per-client loop.

For each model at the paper's setting (k = 25 clients, k_m = 5 Byzantine, b = 32;
20 benign clients compute gradients, 25 vectors are aggregated), on synthetic data
of the real shapes (cnn: 1×28×28, 10 classes; resnet20: 3×32×32, 10 classes;
resnet9: 3×32×32, 100 classes), it reports seconds per round of

* the **floor**: one plain-PyTorch forward+backward of all k·b = 800 samples in
  one batch (and of the k_b·b = 640 samples the benign clients actually use);
* **byzlab, single run**: ``Simulation.step`` (sampling, augmentation for CIFAR,
  client gradients, momentum, attack, aggregation, diagnostics, server step) with
  the ``auto`` engine, with and without diagnostics, and with the other engine;
* **byzlab, batched**: ``BatchedSimulation`` of R runs, time per run;
* the **per-client loop** of :mod:`naive` (one model copy per client);

all timed interleaved (one round of each in turn) so that they share the
machine's noise; ratios are taken between medians of the same invocation.  Then:
every aggregator and pre-aggregator, every attack (ms per call at the model's d),
alternative exact implementations of CM/TM on this device, end-to-end rounds per
aggregator (with ALIE, the costliest omniscient attack of the paper's grid) giving
the share of a round spent in aggregation + attack, and the projected wall time of
the paper's sweep (``byzlab/profiles/paper.yaml``).

On CUDA every timed region starts and ends with ``torch.cuda.synchronize()``;
warm-up rounds come first everywhere.  Evaluation is not part of a round (it runs
at its cadence, once per epoch); the projection adds one evaluation per epoch.

Usage::

    python benchmarks/bench.py                                  # CPU defaults (about 10 minutes)
    python benchmarks/bench.py --quick                          # cnn only, fewer rounds
    python benchmarks/bench.py --device cuda --runs 4,16,64     # on a GPU
    python benchmarks/bench.py --models cnn --rounds 20 --out benchmarks/results/cnn

Writes ``<out>.json`` (every sample) and ``<out>.md`` (the tables) and prints the tables.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

import byzlab
from byzlab import RunConfig, Simulation
from byzlab.core import aggregators as A
from byzlab.core import kernels
from byzlab.core.batched import BatchedSimulation
from byzlab.core.chain import diagnostics
from byzlab.core.data import DATASET_SPECS, Dataset, run_model
from byzlab.core.models import build_model, sparse_mask
from byzlab.core.registry import AGGREGATORS, ATTACKS, PRE_AGGREGATORS, RoundContext

sys.path.insert(0, str(Path(__file__).resolve().parent))
from naive import PerClientLoop  # noqa: E402

K, K_M, B = 25, 5, 32
K_B = K - K_M


@dataclass(frozen=True)
class ModelSpec:
    model: str
    dataset: str  # the paper's data set this shape stands for
    shape: tuple
    classes: int
    augment: bool

    def describe(self) -> str:
        c, h, w = self.shape
        return f"{self.dataset}-shaped {c}×{h}×{w}, {self.classes} classes"


#: the paper's models, each on the shape of the paper's data set it is the default model of (DATASET_SPECS)
SPECS = {s.model: ModelSpec(s.model, s.name, s.shape, s.num_classes, s.augment)
         for s in (DATASET_SPECS[name] for name in ("mnist", "cifar10", "cifar100"))}

#: per device: (warm-up rounds, timed rounds, end-to-end rounds per aggregator)
DEFAULTS = {
    "cpu": {"cnn": (2, 10, 5), "resnet20": (1, 3, 1), "resnet9": (1, 1, 0)},
    "cuda": {"cnn": (5, 50, 20), "resnet20": (5, 50, 20), "resnet9": (3, 20, 10)},
}
#: models measured with the lean set (floors, auto engine, 25-client round, per-client loop) by default
LEAN = {"cpu": ("resnet9",), "cuda": ()}


# --------------------------------------------------------------------------- timing
class Timer:
    """Wall-clock timing that waits for the device at both ends of every timed region."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def interleaved(self, fns: dict[str, Callable[[], object]], warmup: int, rounds: int) -> dict[str, list[float]]:
        """Seconds per call of each function, calling them in turn ``rounds`` times after ``warmup`` turns."""
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(rounds):
            for name, fn in fns.items():
                self.sync()
                t0 = time.perf_counter()
                fn()
                self.sync()
                times[name].append(time.perf_counter() - t0)
        return times

    def per_call(self, fn: Callable[[], object], n: int, warmup: int = 2) -> list[float]:
        """Seconds per call: each call timed alone on CPU; on CUDA three groups of ``n`` calls (mean per call)."""
        for _ in range(warmup):
            fn()
        self.sync()
        out = []
        if self.cuda:
            for _ in range(3):
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                self.sync()
                out.append((time.perf_counter() - t0) / n)
            return out
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


# --------------------------------------------------------------------------- set-up
def synthetic(spec: ModelSpec, device: torch.device, n_train: int, n_test: int) -> Dataset:
    """Normalised random images of the real shape with random labels (speed does not depend on content)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train, *spec.shape, generator=g)
    y = torch.randint(0, spec.classes, (n_train,), generator=g)
    xt = torch.randn(n_test, *spec.shape, generator=g)
    yt = torch.randint(0, spec.classes, (n_test,), generator=g)
    pad = tuple([-2.0] * spec.shape[0]) if spec.augment else 0.0  # black, as for CIFAR
    return Dataset(spec.dataset, x, y, xt, yt, spec.classes, spec.augment, spec.model, pad_value=pad).to(device)


def base_config(spec: ModelSpec, device: torch.device, precision: str, **kw) -> RunConfig:
    cfg = dict(dataset=spec.dataset, model=spec.model, k=K, k_m=K_M, b=B, epochs=10_000, beta=0.9,
               aggregator="cc", tau=1.0, attack="rop", device=str(device), precision=precision, seed=0)
    cfg.update(kw)
    return RunConfig.make(**cfg)


def floor_fn(spec: ModelSpec, data: Dataset, n: int, precision: str) -> Callable[[], None]:
    """One plain forward+backward of ``n`` samples in one batch (the floor of a round)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(spec.model, spec.classes, spec.shape).to(data.x_train.device).train()
    x, y = data.x_train[:n], data.y_train[:n]
    dev = data.x_train.device.type

    def run() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
        F.cross_entropy(out.float(), y).backward()
    return run


def train_flops_per_sample(spec: ModelSpec) -> float:
    """FLOPs of one forward+backward per sample (counted by ``torch.utils.flop_counter`` on a batch of b)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(spec.model, spec.classes, spec.shape).train()
    x, y = torch.randn(B, *spec.shape), torch.randint(0, spec.classes, (B,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / B


def paper_sweep() -> dict[str, dict]:
    """Distinct runs of the paper profile per model, split by how many clients compute gradients."""
    from byzlab.core.batched import batch_key
    from byzlab.running.experiments import load_profile

    out: dict[str, dict] = {}
    for cfg in load_profile("paper").configs():
        model = run_model(cfg.model, cfg.dataset)
        n_compute = batch_key(cfg)[5]
        info = out.setdefault(model, {"runs": {}, "epochs": cfg.epochs,
                                      "rounds_per_run": cfg.schedule().total_rounds})
        info["runs"][n_compute] = info["runs"].get(n_compute, 0) + 1
    return out


# --------------------------------------------------------------------------- rule tables
def rule_tables(spec: ModelSpec, device: torch.device, timer: Timer, n: int, model: torch.nn.Module,
                compile_kernels: bool = False) -> dict:
    """ms per call of every aggregator, pre-aggregator and attack at the model's d (random momenta)."""
    g = torch.Generator(device=device).manual_seed(0)
    d = sum(p.numel() for p in model.parameters())
    x = torch.randn(K, d, device=device, generator=g) * 1e-2 + 1e-3
    prev = x[:K_B].mean(0) + 1e-3 * torch.randn(d, device=device, generator=g)
    # the rules draw from a CPU generator on every device, as in a run (byzlab.core.draws)
    ctx = RoundContext(t=2, k=K, k_m=K_M, f=K_M, lr=0.1, prev_aggregate=prev, center=prev,
                       generator=torch.Generator().manual_seed(0),
                       byzantine=x[K_B:], mask=sparse_mask(model).to(device), server_update=prev)
    server = AGGREGATORS["cc"]  # the defence an adaptive attack's trial aggregations run (one aggregation each)

    def call(rule, first):
        # each rule keeps its own state across the timed calls (steady state), as in a run
        rule_ctx = dataclasses.replace(ctx, state={}, aggregate=lambda X: server(X, server.params, ctx))
        return lambda: rule(first, rule.params, rule_ctx)

    out: dict[str, dict] = {"aggregators": {}, "pre_aggregators": {}, "attacks": {}, "alternatives": {}}
    for name, rule in AGGREGATORS.items():
        out["aggregators"][name] = timer.per_call(call(rule, x), n)
    for name, rule in PRE_AGGREGATORS.items():
        out["pre_aggregators"][name] = timer.per_call(call(rule, x), n)
    benign = x[:K_B]
    for name, rule in ATTACKS.items():
        out["attacks"][name] = timer.per_call(call(rule, benign), n)

    # exact alternatives (plain textbook forms, and the CPU kernels forced on any device)
    def network(cuts, take):  # the CPU kernels of byzlab.core.kernels, forced on any device
        net = kernels.rank_network(K, cuts)
        return lambda: torch.cat([take(kernels.apply_rank_network_(x[:, sl].clone(), net)) for sl in kernels.column_blocks(x)])
    alts = {
        "tm: rank network": network((K_M, K - K_M), lambda w: w[K_M:K - K_M].mean(0)),
        "tm: two topk": lambda: (x.sum(0) - x.topk(K_M, 0, sorted=False).values.sum(0)
                                 - x.topk(K_M, 0, largest=False, sorted=False).values.sum(0)) / (K - 2 * K_M),
        "tm: sort": lambda: x.sort(0).values[K_M:K - K_M].mean(0),
        "cm: rank network": network((K // 2, K // 2 + 1), lambda w: w[K // 2]),
        "cm: torch.median": lambda: x.median(0).values,
        "alie: Tensor.std(0)": lambda: x[:K_B].mean(0) - 0.25 * x[:K_B].std(0),
        "cc: one (k, d) difference": lambda: prev + ((x - prev) * (1.0 / (x - prev).norm(dim=1, keepdim=True))
                                                     .clamp(max=1.0)).mean(0),
        "rfa: (k, d) differences": lambda: _rfa_plain(x),
    }
    if compile_kernels:  # the same networks fused into one loop by torch.compile (Inductor)
        alts["tm: rank network, torch.compile"] = _compiled_network(x, (K_M, K - K_M), lambda r: sum(r[K_M:K - K_M]) / (K - 2 * K_M))
        alts["cm: rank network, torch.compile"] = _compiled_network(x, (K // 2, K // 2 + 1), lambda r: r[K // 2])
    if K * (K - K_M) * d * 4 < 2 ** 31:  # the gathered (k, k - f, d) tensor must fit
        alts["nnm: gather + mean"] = lambda: x[torch.topk(A.pairwise_sq_distances(x), K - K_M, dim=1,
                                                          largest=False).indices].mean(1)
    for name, fn in alts.items():
        out["alternatives"][name] = timer.per_call(fn, n)
    return out


def _compiled_network(x: torch.Tensor, cuts: tuple, take: Callable) -> Callable[[], torch.Tensor]:
    """``take(rows)`` after the rank network of ``cuts`` on the rows of ``x``, compiled into one fused kernel."""
    pairs = [(a + j * step, a + j * step + dist) for a, step, count, dist in kernels.rank_network(x.shape[0], cuts)
             for j in range(count)]

    def network(m: torch.Tensor) -> torch.Tensor:
        rows = list(m.unbind(0))
        for i, j in pairs:
            rows[i], rows[j] = torch.minimum(rows[i], rows[j]), torch.maximum(rows[i], rows[j])
        return take(rows)

    fn = torch.compile(network, dynamic=False)
    fn(x)  # compile outside the timed calls
    return lambda: fn(x)


def _rfa_plain(x: torch.Tensor, iters: int = 3, nu: float = 0.1) -> torch.Tensor:
    """RFA written with a (k, d) difference per iteration (the textbook form)."""
    z = torch.zeros_like(x[0])
    for _ in range(iters):
        w = 1.0 / (x - z).norm(dim=1).clamp_min(nu)
        z = (w[:, None] * x).sum(0) / w.sum()
    return z


# --------------------------------------------------------------------------- one model
def bench_model(name: str, args, device: torch.device, timer: Timer, log: Callable[[str], None]) -> dict:
    spec = SPECS[name]
    dev = device.type if device.type in DEFAULTS else "cpu"
    warm, rounds, rule_rounds = DEFAULTS[dev][name]
    if args.quick:
        warm, rounds, rule_rounds = 1, max(2, rounds // 3), min(rule_rounds, 2)
    warm = args.warmup if args.warmup is not None else warm
    rounds = args.rounds if args.rounds is not None else rounds
    rule_rounds = args.rule_rounds if args.rule_rounds is not None else rule_rounds
    lean = name in (args.lean if args.lean is not None else LEAN[dev])

    data = synthetic(spec, device, n_train=K * B * 4, n_test=2000)
    cfg = base_config(spec, device, args.precision)
    res: dict = {"model": name, "shape": spec.describe(), "warmup": warm, "rounds": rounds, "lean": lean,
                 "train_flops_per_sample": train_flops_per_sample(spec)}

    # ---- rounds, interleaved
    fns: dict[str, Callable] = {
        "floor k·b": floor_fn(spec, data, K * B, args.precision),
        "floor k_b·b": floor_fn(spec, data, K_B * B, args.precision),
    }
    auto = Simulation(cfg, dataset=data)
    res["d"], res["engine_auto"] = auto.d, auto.engine_name
    fns[f"byzlab {auto.engine_name} (auto)"] = auto.step
    if not lean:
        fns[f"byzlab {auto.engine_name}, no diagnostics"] = Simulation(cfg.replace(diagnostics=False), dataset=data).step
        other = "vmap" if auto.engine_name == "loop" else "loop"
        fns[f"byzlab {other}"] = Simulation(cfg.replace(engine=other), dataset=data).step
    fns["byzlab 25 clients (attack none)"] = Simulation(cfg.replace(attack="none"), dataset=data).step
    naive_model = build_model(spec.model, spec.classes, spec.shape)
    fns["per-client loop"] = PerClientLoop(naive_model, data, k=K, k_m=K_M, b=B).step
    batched: dict[str, int] = {}
    if not lean:
        for r in sorted(args.runs):
            try:
                bs = BatchedSimulation([cfg.replace(seed=s) for s in range(r)], dataset=data)
                bs.step()  # one extra warm-up round: does R fit in memory?
            except torch.cuda.OutOfMemoryError:
                bs = None
                gc.collect()
                torch.cuda.empty_cache()
                log(f"{name}: batched R={r} does not fit in device memory; it and larger R skipped")
                break  # a larger R needs more memory still (and cuDNN refuses some such batches outright)
            label = f"byzlab batched R={r} (per run)"
            fns[label] = bs.step
            batched[label] = r
    log(f"{name}: d = {auto.d:,}; timing {len(fns)} round kinds, {warm} warm-up + {rounds} rounds each")
    times = timer.interleaved(fns, warm, rounds)
    for label, r in batched.items():
        times[label] = [t / r for t in times[label]]
    res["round_s"] = times
    del fns
    gc.collect()

    # ---- evaluation (once per epoch in a run): 2,000 test samples timed, ×5 for the 10,000 of the paper's sets
    ev = timer.per_call(auto.evaluate, 3 if dev == "cpu" else 10, warmup=1)
    res["eval_s"] = [5 * t for t in ev]

    # ---- aggregators and attacks at this d
    n_calls = max(3, min(20, rounds * 2)) if dev == "cpu" else 20
    log(f"{name}: aggregators and attacks, {n_calls} calls each")
    res["rules_s"] = rule_tables(spec, device, timer, n_calls, auto.model, compile_kernels=args.compile)

    # ---- diagnostics alone (after the timed rounds X and m̃_{t-1} hold real values)
    x, prev = auto.X, auto.prev_aggregate

    def plain_diagnostics():
        delta = x[K_B] - x[:K_B].mean(0)
        cos = F.cosine_similarity(x, prev[None, :], dim=1)
        clip = ((x - prev).norm(dim=1) > 1.0).float().mean()
        return torch.stack([F.cosine_similarity(delta, delta, dim=0), cos[:K_B].mean(), cos[K_B:].mean(), clip])
    res["diagnostics_s"] = {
        "byzlab (one blocked pass over X)": timer.per_call(
            lambda: diagnostics(x, K_B, prev, prev, None, auto.chain.clip_radius), n_calls),
        "plain formulas ((k, d) temporaries)": timer.per_call(plain_diagnostics, n_calls),
    }

    # ---- end-to-end rounds per aggregator, attack ALIE
    res["rule_round_s"] = {}
    if rule_rounds > 0:
        rule_cfgs = {agg: cfg.replace(aggregator=agg, attack="alie") for agg in AGGREGATORS}
        rule_cfgs["bucketing+cc"] = cfg.replace(attack="alie", pre_aggregators=("bucketing",))
        rule_cfgs["nnm+cc"] = cfg.replace(attack="alie", pre_aggregators=("nnm",))
        sims = {agg: Simulation(c, dataset=data).step for agg, c in rule_cfgs.items()}
        log(f"{name}: end-to-end rounds for {len(sims)} aggregators, 1 warm-up + {rule_rounds} rounds each")
        res["rule_round_s"] = timer.interleaved(sims, 1, rule_rounds)
        del sims
    del auto
    gc.collect()
    return res


# --------------------------------------------------------------------------- report
def ms(x: float) -> str:
    return f"{1e3 * x:.1f}"


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [f"Measured on {env['device']}, torch {env['torch']}, {env['date']}.", "",
             f"Command: `{env['command']}`", ""]
    sweep = report["paper_sweep"]
    for res in report["models"]:
        rt = {k: med(v) for k, v in res["round_s"].items()}
        floor, floor_b = rt["floor k·b"], rt["floor k_b·b"]
        auto_label = f"byzlab {res['engine_auto']} (auto)"
        lines += [f"### {res['model']} ({res['shape']}), d = {res['d']:,}", "",
                  f"{res['warmup']} warm-up + {res['rounds']} timed rounds of each kind, interleaved; median.", "",
                  "| per round | s (median) | s (min) | ÷ floor k·b | ÷ floor k_b·b |", "|---|---|---|---|---|"]
        for label, xs in res["round_s"].items():
            lines.append(f"| {label} | {med(xs):.4f} | {min(xs):.4f} | {med(xs) / floor:.2f} | {med(xs) / floor_b:.2f} |")
        a = rt[auto_label]
        lo = {k: min(v) for k, v in res["round_s"].items()}
        lines += ["", f"- round ÷ floor (k·b = {K * B} samples in one batch): **{a / floor:.2f}** (medians; "
                      f"minima: {lo[auto_label] / lo['floor k·b']:.2f}; target ≤ 1.15); "
                      f"÷ floor of the {K_B * B} samples the benign clients use: {a / floor_b:.2f}",
                  f"- 25 clients computing (no attack, label/bit flip) ÷ floor k·b: "
                  f"{rt['byzlab 25 clients (attack none)'] / floor:.2f} (minima: "
                  f"{lo['byzlab 25 clients (attack none)'] / lo['floor k·b']:.2f})",
                  f"- per-client loop ÷ byzlab round: **{rt['per-client loop'] / a:.2f}×**"]
        nodiag = f"byzlab {res['engine_auto']}, no diagnostics"
        if nodiag in rt:
            lines.append(f"- diagnostics: {ms(a - rt[nodiag])} ms per round ({100 * (a - rt[nodiag]) / a:.1f} %) "
                         f"from medians, {ms(lo[auto_label] - lo[nodiag])} ms from minima")
        for label in rt:
            if label.startswith("byzlab batched"):
                lines.append(f"- {label}: {ms(rt[label])} ms per run per round; "
                             f"per-client loop ÷ it: {rt['per-client loop'] / rt[label]:.2f}×")
        lines.append(f"- evaluation of 10,000 test samples (once per epoch): {med(res['eval_s']):.3f} s")

        rules = res["rules_s"]
        agg = {k: med(v) for k, v in rules["aggregators"].items()}
        atk = {k: med(v) for k, v in rules["attacks"].items()}
        rr = {k: med(v) for k, v in res["rule_round_s"].items()}
        base = rt[auto_label] - agg["cc"] - atk["rop"]  # the round without aggregation and attack
        lines += ["", "| aggregator | ms per call | round with ALIE, s | (agg + ALIE) ÷ round |", "|---|---|---|---|"]
        names = list(agg) + [f"{p}+cc" for p in rules["pre_aggregators"]]
        for n in names:
            if n in agg:
                t = agg[n]
                shown = ms(t)
            else:
                pre = n.split("+")[0]
                t = med(rules["pre_aggregators"][pre]) + agg["cc"]
                shown = f"{ms(med(rules['pre_aggregators'][pre]))} + cc"
            cost = t + atk["alie"]
            if n in rr:
                share = f"{100 * cost / rr[n]:.1f} %"
                rnd = f"{rr[n]:.4f}"
            else:
                share = f"{100 * cost / (base + cost):.1f} % (est.)"
                rnd = "—"
            lines.append(f"| {n} | {shown} | {rnd} | {share} |")
        lines += ["", "| diagnostics alone | ms per call |", "|---|---|"]
        lines += [f"| {n} | {ms(med(v))} |" for n, v in res.get("diagnostics_s", {}).items()]
        lines += ["", "| attack | ms per call |", "|---|---|"]
        lines += [f"| {n} | {ms(t)} |" for n, t in atk.items()]
        lines += ["", "| exact alternative form (this device) | ms per call |", "|---|---|"]
        lines += [f"| {n} | {ms(med(v))} |" for n, v in rules["alternatives"].items()]
        lines.append("")
        if not rr:
            lines += ["(est.): no end-to-end rounds per aggregator for this model; the share is "
                      "(agg + ALIE) ÷ (round of cc+rop − cc − rop + agg + ALIE).", ""]

    lines += ["### Projected wall time of the paper sweep (`byzlab/profiles/paper.yaml`)", "",
              "| model | runs (20 / 25 clients computing) | rounds per run | single runs, h | batched, h "
              "| client fwd+bwd, PFLOP |",
              "|---|---|---|---|---|---|"]
    total_single = total_batched = total_pflop = 0.0
    all_single = all_batched = True
    for m, info in sweep.items():
        res = next((r for r in report["models"] if r["model"] == m), None)
        runs20, runs25 = info["runs"].get(K_B, 0), info["runs"].get(K, 0)
        if res is None:
            all_single = all_batched = False
            lines.append(f"| {m} | {runs20} / {runs25} | {info['rounds_per_run']} | not measured | | |")
            continue
        pflop = info["rounds_per_run"] * B * (runs20 * K_B + runs25 * K) * res["train_flops_per_sample"] / 1e15
        total_pflop += pflop
        rt = {k: med(v) for k, v in res["round_s"].items()}
        t20 = rt[f"byzlab {res['engine_auto']} (auto)"]
        t25 = rt["byzlab 25 clients (attack none)"]
        ev = med(res["eval_s"]) * info["epochs"]
        rounds = info["rounds_per_run"]
        single = (runs20 * (rounds * t20 + ev) + runs25 * (rounds * t25 + ev)) / 3600
        b_labels = [k for k in rt if k.startswith("byzlab batched")]
        if b_labels:
            tb = min(rt[k] for k in b_labels)  # best batch size measured
            batched = (runs20 * (rounds * tb + ev) + runs25 * (rounds * tb * t25 / t20 + ev)) / 3600
            total_batched += batched
            shown_b = f"{batched:,.1f}"
        else:
            all_batched = False
            shown_b = "—"
        total_single += single
        lines.append(f"| {m} | {runs20} / {runs25} | {rounds} | {single:,.1f} | {shown_b} | {pflop:,.0f} |")
    total_rounds = sum(i["rounds_per_run"] * sum(i["runs"].values()) for i in sweep.values())
    lines.append(f"| **total** ({sum(sum(i['runs'].values()) for i in sweep.values())} runs, "
                 f"{total_rounds / 1e6:.2f} M rounds) | | | "
                 f"{total_single:,.1f}{'' if all_single else ' (partial)'} | "
                 f"{total_batched:,.1f}{'' if all_batched else ' (partial)'} | "
                 f"{total_pflop:,.0f}{'' if all_single else ' (partial)'} |")
    lines += ["", "Per run: rounds × measured s per round (20 or 25 clients computing) + one evaluation of "
                  "10,000 test samples per epoch; batched: the fastest measured R, 25-client runs scaled by the "
                  "single-run ratio of 25- to 20-client rounds.  PFLOP: the clients' forward+backward passes "
                  "alone (FLOPs counted per sample × samples), a lower bound on the work of the sweep.", ""]
    return "\n".join(lines)


def environment(device: torch.device, argv: list[str]) -> dict:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or "CPU"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        name = f"{name}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads)"
    return {"device": name, "torch": torch.__version__, "byzlab": byzlab.__version__,
            "date": datetime.date.today().isoformat(), "python": platform.python_version(),
            "command": "python benchmarks/bench.py " + " ".join(argv)}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default="cnn,resnet20,resnet9", help="comma-separated: cnn, resnet20, resnet9")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per kind (default: by device and model)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up rounds per kind (default: by device and model)")
    ap.add_argument("--rule-rounds", type=int, default=None,
                    help="end-to-end rounds per aggregator (0: skip, share estimated; default by model)")
    ap.add_argument("--runs", default=None, help="batched run counts R, comma-separated (default 2 on CPU, 16 on CUDA)")
    ap.add_argument("--lean", default=None,
                    help="models measured without the no-diagnostics, other-engine and batched rounds "
                         "(default: resnet9 on CPU, none on CUDA; '' for none)")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"))
    ap.add_argument("--quick", action="store_true", help="cnn only unless --models is given; fewer rounds")
    ap.add_argument("--compile", action="store_true",
                    help="also time the CM/TM networks fused by torch.compile (one-off compilation, ~20 s each on CPU)")
    ap.add_argument("--out", default=None, help="output prefix for .json and .md (default benchmarks/results/bench-<device>)")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: CUDA is not available here")
    if args.quick and "--models" not in argv:
        args.models = "cnn"
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in SPECS]
    if unknown:
        ap.error(f"--models: unknown {unknown[0]!r}; choose from {', '.join(SPECS)}")
    args.runs = [int(r) for r in (args.runs or ("16" if device.type == "cuda" else "2")).split(",") if r.strip()]
    if args.lean is not None:
        args.lean = tuple(m.strip() for m in args.lean.split(",") if m.strip())
    if device.type == "cuda":  # the floor and the per-client loop in the rounds' precision: TF32 for tf32 only
        # (PyTorch's default runs cuDNN convolutions in TF32, which byzlab's fp32 rounds do not)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.precision == "tf32"

    timer = Timer(device)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)

    report = {"environment": environment(device, argv), "paper_sweep": paper_sweep(), "models": []}
    for m in models:
        report["models"].append(bench_model(m, args, device, timer, log))
    report["environment"]["benchmark_seconds"] = round(time.perf_counter() - t0, 1)

    out = Path(args.out or f"benchmarks/results/bench-{device.type}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    md = markdown(report)
    out.with_suffix(".md").write_text(md + "\n")
    print(md)
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return report


if __name__ == "__main__":
    main()
