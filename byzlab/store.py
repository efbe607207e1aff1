"""A results store: finished runs on disk, keyed by the full run config.

``<root>/<key>/`` holds one :class:`~byzlab.results.RunResult` (see
:meth:`RunResult.save`), where ``key`` = :meth:`RunConfig.key` — a hash of the
resolved config, so any change of any parameter is another entry.  Notebooks,
the sweep and the dashboard share it: a run computed once is read everywhere.

Safety: entries are written atomically (temporary folder + rename), so an
interrupted run leaves no entry; an entry whose stored config differs from the
requested one (hash collision, hand edits), or that cannot be read, is treated
as missing, moved aside to ``<root>/.bad/`` and recomputed — never silently
reused.  Runs in progress checkpoint into ``<root>/.checkpoints/<key>.pt`` and
resume from there.  Crashes are recorded in ``<root>/.errors/<key>.json``.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .config import RunConfig
from .results import RunResult


def default_root() -> Path:
    """``$BYZLAB_CACHE`` or ``~/.cache/byzlab/results``."""
    return Path(os.environ.get("BYZLAB_CACHE") or Path.home() / ".cache" / "byzlab" / "results")


class ResultStore:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r}, {len(self.keys())} runs)"

    # ------------------------------------------------------------------ paths
    def path(self, config: RunConfig | dict) -> Path:
        return self.root / RunConfig.make(config).key()

    def checkpoint_path(self, config: RunConfig | dict) -> Path:
        return self.root / ".checkpoints" / f"{RunConfig.make(config).key()}.pt"

    def error_path(self, config: RunConfig | dict) -> Path:
        return self.root / ".errors" / f"{RunConfig.make(config).key()}.json"

    # ------------------------------------------------------------------ read / write
    def keys(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def has(self, config: RunConfig | dict) -> bool:
        return self.get(config) is not None

    def get(self, config: RunConfig | dict) -> RunResult | None:
        """The stored result for exactly this config, or None (bad entries are moved aside)."""
        cfg = RunConfig.make(config)
        path = self.root / cfg.key()
        if not path.exists():
            return None
        try:
            result = RunResult.load(path)
        except ValueError:
            self._quarantine(path)
            return None
        if result.config.identity() != cfg.identity() or not len(result.history):
            self._quarantine(path)
            return None
        return result

    def put(self, result: RunResult) -> Path:
        path = result.save(self.root / result.config.key())
        err = self.error_path(result.config)
        if err.exists():
            err.unlink()
        return path

    def _quarantine(self, path: Path) -> None:
        bad = self.root / ".bad"
        bad.mkdir(exist_ok=True)
        shutil.move(str(path), str(bad / f"{path.name}.{int(time.time() * 1e6)}"))

    def record_error(self, config: RunConfig | dict, error: BaseException, attempt: int = 1) -> None:
        cfg = RunConfig.make(config)
        path = self.error_path(cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({
            "key": cfg.key(), "config": cfg.to_dict(), "attempt": attempt,
            "error": f"{type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
        }, indent=2, default=str))
        os.replace(tmp, path)

    def errors(self) -> list[dict]:
        folder = self.root / ".errors"
        if not folder.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]

    # ------------------------------------------------------------------ compute
    def run(self, config: RunConfig | dict | None = None, *, checkpoint_every: int | None = None,
            progress: bool = False, **overrides: Any) -> RunResult:
        """The stored result, or run it now (checkpointing, resumable) and store it."""
        from .simulator import run

        cfg = RunConfig.make(config, **overrides)
        cached = self.get(cfg)
        if cached is not None:
            return cached
        ckpt = self.checkpoint_path(cfg)
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        result = run(cfg, checkpoint=ckpt, checkpoint_every=checkpoint_every, progress=progress)
        self.put(result)
        return result

    def run_many(self, configs: Iterable[RunConfig | dict], *, progress: bool = True) -> list[RunResult]:
        """Results for all configs in order, computing only the missing ones (sequentially)."""
        configs = [RunConfig.make(c) for c in configs]
        todo = [c for c in configs if not self.has(c)]
        bar = None
        if progress and todo:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), unit="run", desc=f"{len(configs) - len(todo)} cached, computing")
        for cfg in todo:
            self.run(cfg)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return [self.get(c) for c in configs]

    def results(self) -> list[RunResult]:
        out = []
        for key in self.keys():
            try:
                out.append(RunResult.load(self.root / key))
            except ValueError:
                continue
        return out

    def table(self, results: Iterable[RunResult] | None = None) -> pd.DataFrame:
        """One tidy row per stored run (see :func:`results_table`)."""
        return results_table(self.results() if results is None else results)


def aggregator_label(cfg: RunConfig) -> str:
    """``cc_tau0.1``, ``cc_tau1``, ``rfa``, ``tm`` … as in Table IV's columns (``table4_paper.csv``)."""
    name = "+".join([*cfg.pre_aggregators, cfg.aggregator])
    if cfg.aggregator == "cc":
        return f"{name}_tau{cfg.aggregator_params['tau']:g}"
    return name


def results_table(results: Iterable[RunResult]) -> pd.DataFrame:
    """One row per run: its identifying config columns and final metrics."""
    rows = []
    for r in results:
        c = r.config
        h = r.history
        rows.append({
            "key": c.key(), "dataset": c.dataset, "partition": c.partition if c.partition == "iid" else f"dirichlet{c.alpha:g}",
            "attack": c.attack, "aggregator": aggregator_label(c), "beta": c.beta, "seed": c.seed,
            "k": c.k, "k_m": c.n_byzantine, "epochs": c.epochs, "model": c.model,
            **{f"attack.{k}": v for k, v in c.attack_params.items()},
            **{f"aggregator.{k}": v for k, v in c.aggregator_params.items()},
            "final_accuracy": r.final_accuracy, "best_accuracy": float(h["test_accuracy"].max()) if len(h) else float("nan"),
            "final_train_loss": float(h["train_loss"].iloc[-1]) if len(h) else float("nan"),
            "diverged": r.diverged, "rounds": int(h["round"].iloc[-1]) if len(h) else 0,
            "seconds_per_round": r.meta.get("seconds_per_round"),
            **{f"mean_{col}": float(r.rounds[col].mean()) for col in ("cos_delta", "cos_ref_benign", "cos_ref_byz", "clip_fraction") if col in r.rounds},
        })
    return pd.DataFrame(rows)
