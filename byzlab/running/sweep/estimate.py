"""How long a sweep will take, from measured speeds; and how many runs fit in one GPU batch.

The per-round cost of a run is *measured*: :func:`estimate` takes it from runs of
the same :func:`speed_group` already in the store (their ``wall_seconds /
rounds_computed``), or else from :func:`calibrate`, a short timed run of a few
rounds plus one evaluation on this machine (on random stand-in data of the same
shape when the data set is not on disk).  Calibrations are cached in
``<store>/.calibration.json``, keyed by what the speed depends on (host, data
set, model, norm, k, b, precision, device, gradient engine, threads, torch version);
the same cache gives :func:`auto_batch` the memory of one run on CUDA.
"""
from __future__ import annotations

import dataclasses
import math
import platform
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import pandas as pd

from ...core.config import RunConfig, resolve_device
from ...core.data import DATASET_SPECS, run_model
from .output import read_json, write_json
from .plan import Plan


def _calibration_key(cfg: RunConfig, threads: int) -> str:
    """What the speed of a round depends on (besides the number of clients, scaled linearly)."""
    import torch

    dev = resolve_device(cfg.device)
    return "|".join(map(str, (platform.node(), cfg.dataset, run_model(cfg.model, cfg.dataset), cfg.norm, cfg.k, cfg.b, cfg.precision,
                              dev.type, cfg.engine, threads, torch.__version__)))


def _stand_in(name: str, k: int, b: int, n_test: int):
    """Random data with the shape, classes and augmentation of data set ``name`` (timing only)."""
    import torch

    from ...core.data import Dataset

    spec = DATASET_SPECS[name]
    shape, classes = spec.shape, spec.num_classes
    g = torch.Generator().manual_seed(0)
    n = 2 * k * b
    return Dataset(name, torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g),
                   torch.randn(n_test, *shape, generator=g), torch.randint(0, classes, (n_test,), generator=g),
                   classes, spec.augment, spec.model)


def calibrate(cfg: RunConfig, *, threads: int | None = None, rounds: int = 3, min_seconds: float = 1.0,
              eval_samples: int = 1000) -> dict:
    """Time a few rounds and one evaluation of ``cfg`` on this machine.

    Returns ``seconds_per_round`` (training only), ``seconds_per_eval`` (scaled to the
    full test set), ``seconds_setup`` (building the model and client shards),
    ``n_compute`` (clients computing gradients in the timed rounds), ``stand_in`` (True
    when the data set was not on disk and random data of its shape was used) and, on
    CUDA, ``peak_bytes`` (memory of one run, to size GPU batches).
    One untimed warm-up round absorbs one-off costs (allocations, kernel selection).
    """
    import torch

    from ...core.data import load_dataset
    from ...core.simulator import Simulation

    n_test = DATASET_SPECS[cfg.dataset].n_test
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        try:
            data, stand_in = load_dataset(cfg.dataset, root=cfg.data_root, download=False), False
        except (ValueError, OSError, RuntimeError):
            data, stand_in = _stand_in(cfg.dataset, cfg.k, cfg.b, min(eval_samples, n_test)), True
        used = min(eval_samples, data.x_test.shape[0])
        data = dataclasses.replace(data, x_test=data.x_test[:used], y_test=data.y_test[:used])
        probe = cfg.replace(partition="iid", max_rounds=None, eval_every=None)  # speed is partition-free
        dev = resolve_device(cfg.device)
        data = data.to(dev)  # shared by all runs of a batch: not part of one run's memory
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
        t0 = time.perf_counter()
        sim = Simulation(probe, dataset=data)
        setup = time.perf_counter() - t0
        sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
        sim.step()  # warm-up, untimed
        sync()
        n, t0 = 0, time.perf_counter()
        while n < rounds or (time.perf_counter() - t0 < min_seconds and n < 50):
            sim.step()
            sync()
            n += 1
        per_round = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        sim.evaluate()
        sync()
        per_eval = (time.perf_counter() - t0) * n_test / used
        out = {"seconds_per_round": per_round, "seconds_per_eval": per_eval, "seconds_setup": setup,
               "n_compute": sim.n_compute,
               "rounds_timed": n, "stand_in": stand_in, "measured_at": time.strftime("%Y-%m-%d %H:%M")}
        if dev.type == "cuda":
            out["peak_bytes"] = int(torch.cuda.max_memory_allocated(dev) - base)
        return out
    finally:
        torch.set_num_threads(old_threads)


@dataclass
class Estimate:
    """Estimated seconds of each run, and how they were obtained (one row per group in ``groups``)."""

    seconds: dict[str, float | None]
    groups: pd.DataFrame
    threads: int

    def total(self, keys: Iterable[str]) -> tuple[float, int]:
        """(estimated seconds, number of runs without an estimate) over ``keys``."""
        s, unknown = 0.0, 0
        for k in keys:
            v = self.seconds.get(k)
            if v is None:
                unknown += 1
            else:
                s += v
        return s, unknown


def speed_group(cfg: RunConfig) -> tuple:
    """Runs whose rounds take the same time: data set, model, norm, k, b, clients computing, precision, device."""
    return (cfg.dataset, run_model(cfg.model, cfg.dataset), cfg.norm, cfg.k, cfg.b, cfg.n_compute, cfg.precision,
            resolve_device(cfg.device).type)


def estimate(plan: Plan, *, threads: int = 1, calibrate_missing: bool = True, rounds: int = 3,
             log: Callable[[str], None] | None = None) -> Estimate:
    """Estimated seconds per run of ``plan``, from measured per-round speeds.

    Per group of runs with the same data set, model, norm, k, b, number of clients
    computing gradients, precision and device: the median all-in seconds per round
    (training, evaluations, setup) of runs of the group already computed by a sweep
    (``wall_seconds / rounds_computed`` in their meta), else a calibration of this
    machine (:func:`calibrate`; cached in ``<store>/.calibration.json``), whose
    round time is scaled linearly to the group's number of computing clients and
    to which the evaluations are added.  Without either (``calibrate_missing=False``)
    the group has no estimate.
    """
    cache_path = plan.store.root / ".calibration.json"
    cache = read_json(cache_path)
    finished: dict[tuple, list[float]] = {}
    for cfg in plan.done:
        meta = read_json(plan.store.path(cfg) / "meta.json")
        if meta.get("wall_seconds") and meta.get("rounds_computed"):
            finished.setdefault(speed_group(cfg), []).append(meta["wall_seconds"] / meta["rounds_computed"])
    groups: dict[tuple, list[RunConfig]] = {}
    for cfg in plan.configs:
        groups.setdefault(speed_group(cfg), []).append(cfg)
    seconds: dict[str, float | None] = {}
    rows = []
    done = {d.key() for d in plan.done}
    for g, cfgs in groups.items():
        todo = [c for c in cfgs if c.key() not in done]
        per_round, source = None, "no estimate (calibration skipped)"
        if g in finished:
            per_round = float(pd.Series(finished[g]).median())
            source = f"{len(finished[g])} finished run{'s' * (len(finished[g]) != 1)}"
        else:
            ckey = _calibration_key(cfgs[0], threads)
            cal = cache.get(ckey)
            if cal is None and calibrate_missing and todo:
                if log:
                    log(f"calibrating {g[0]}/{g[1]} ({rounds}+ timed rounds on this machine) ...")
                cal = cache[ckey] = calibrate(cfgs[0], threads=threads, rounds=rounds)
                write_json(cache_path, cache)
            if cal is not None:
                scale = cfgs[0].n_compute / cal["n_compute"]
                ref = cfgs[0]
                sched = ref.schedule()
                per_round = cal["seconds_per_round"] * scale + \
                    (cal["seconds_per_eval"] * sched.n_evaluations + cal.get("seconds_setup", 0.0)) / sched.total_rounds
                source = f"calibration, {cal['rounds_timed']} rounds" + \
                         (" on stand-in data" if cal.get("stand_in") else "") + f" ({cal['measured_at']})"
        for c in cfgs:
            seconds[c.key()] = None if per_round is None else per_round * c.schedule().total_rounds
        rounds_per_run = int(pd.Series([c.schedule().total_rounds for c in cfgs]).median())
        rows.append({"dataset": g[0], "model": g[1], "clients": g[5], "device": g[7], "runs": len(cfgs),
                     "to_run": len(todo), "rounds_per_run": rounds_per_run, "seconds_per_round": per_round,
                     "hours_per_run": None if per_round is None else per_round * rounds_per_run / 3600,
                     "source": source})
    return Estimate(seconds, pd.DataFrame(rows), threads)


def format_duration(seconds: float | None) -> str:
    """``4.2s``, ``12min``, ``3.5h``, ``2.1 days``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 10:
        return f"{seconds:.2g}s"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f} days"


def auto_batch(plan: Plan, todo: list[RunConfig], threads: int, workers: int) -> int:
    """Runs per job: 1 on CPU; on CUDA as many as fit in memory (measured for one run), at most 32."""
    if not todo or resolve_device(todo[0].device).type != "cuda":
        return 1
    import torch

    cache_path = plan.store.root / ".calibration.json"
    cache = read_json(cache_path)
    need = 0
    for cfg in {_calibration_key(c, threads): c for c in todo}.values():
        ckey = _calibration_key(cfg, threads)
        if ckey not in cache:
            cache[ckey] = calibrate(cfg, threads=threads)
            write_json(cache_path, cache)
            torch.cuda.empty_cache()  # give the workers what the calibration held
        need = max(need, cache[ckey].get("peak_bytes") or 0)
    if not need:
        return 1
    free, _ = torch.cuda.mem_get_info()
    return int(max(1, min(32, 0.8 * free / max(1, workers) / (1.25 * need))))
