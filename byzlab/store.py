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

import hashlib
import json
import os
import re
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .config import RunConfig
from .results import RunResult
from .errors import ConfigError

#: the columns that identify a cell of Table IV (``table4_paper.csv``, :func:`table4`)
TABLE4_KEYS = ("dataset", "partition", "attack", "aggregator", "beta")
#: what :meth:`RunResult.save` and the checkpoints leave behind when killed mid-write
_TEMPORARY = re.compile(r"^\.[0-9a-f]{16}\.")


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

    def contains(self, config: RunConfig | dict) -> bool:
        """Cheap :meth:`has`: the entry is complete and was written for this config (reads only its
        ``config.json``; :meth:`get` still validates the rest when the result is loaded)."""
        cfg = RunConfig.make(config)
        path = self.root / cfg.key()
        if not all((path / name).is_file() for name in ("config.json", "meta.json", "history.csv", "rounds.csv")):
            return False
        try:
            stored = RunConfig.from_dict(json.loads((path / "config.json").read_text()), strict=False)
        except (OSError, ValueError, TypeError):
            return False
        return stored.identity() == cfg.identity()

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

    def record_error(self, config: RunConfig | dict, error: BaseException | str, attempt: int = 1,
                     tb: str | None = None) -> None:
        """Record why a run failed (an exception, or its one-line text plus ``tb`` when it happened
        in another process); :meth:`put` of a later success removes the record."""
        cfg = RunConfig.make(config)
        path = self.error_path(cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(error, BaseException):
            message = f"{type(error).__name__}: {error}"
            tb = tb or "".join(traceback.format_exception(type(error), error, error.__traceback__))
        else:
            message = str(error)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({
            "key": cfg.key(), "config": cfg.to_dict(), "attempt": attempt,
            "error": message, "traceback": tb or "", "time": time.time(),
        }, indent=2, default=str))
        os.replace(tmp, path)

    def error(self, config: RunConfig | dict) -> dict | None:
        """The recorded failure of this run, or None."""
        path = self.error_path(config)
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def clean_temporaries(self, max_age_s: float = 900.0) -> int:
        """Remove half-written entries and checkpoints left by killed processes; returns how many.

        Only files untouched for ``max_age_s`` seconds go, so a writer still at work (another
        process sharing the store) is never disturbed; complete entries are never touched.
        """
        now, removed = time.time(), 0
        candidates = [p for p in self.root.iterdir() if _TEMPORARY.match(p.name)]
        ckpts = self.root / ".checkpoints"
        if ckpts.exists():
            candidates += [p for p in ckpts.iterdir() if ".tmp" in p.suffix]
        for p in candidates:
            try:
                if now - p.stat().st_mtime < max_age_s:
                    continue
                shutil.rmtree(p) if p.is_dir() else p.unlink()
                removed += 1
            except OSError:
                continue
        return removed

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


#: byzlab's attack label -> the paper's Table IV row it reproduces.  ``alie_z1.2`` is ALIE with the
#: authors' library's default z = 1.2 of the time (README "Fidelity"; that the paper's table was run
#: with it is an inference), so it sits beside the paper's ALIE row too.
PAPER_ATTACK = {"alie_z1.2": "alie"}


def attack_label(cfg: RunConfig) -> str:
    """``rop``, ``alie`` … as in Table IV's rows; an ALIE whose ``z`` is set explicitly is another row,
    ``alie_z1.2`` (the authors' library's historical default, see README "Fidelity"), so the paper's
    z_max row and the as-run z = 1.2 row are never averaged together."""
    if cfg.attack in ("alie", "alie_alt") and cfg.attack_params.get("z") is not None:
        return f"{cfg.attack}_z{float(cfg.attack_params['z']):g}"
    return cfg.attack


def cell_key(config: RunConfig) -> str:
    """Id of the run's config *without its seed*: the runs averaged into one table cell share it."""
    identity = config.identity()
    identity.pop("seed", None)
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def partition_label(cfg: RunConfig) -> str:
    """``iid`` or ``dirichlet<α>`` (``dirichlet1`` for the paper's α = 1), as in ``table4_paper.csv``."""
    return cfg.partition if cfg.partition == "iid" else f"dirichlet{cfg.alpha:g}"


def results_table(results: Iterable[RunResult]) -> pd.DataFrame:
    """One row per run: its identifying config columns and final metrics.

    ``dataset, partition, attack, aggregator, beta`` are labelled as in the paper's
    Table IV (``table4_paper.csv``), so the two merge on those columns; ``cell``
    groups the seeds of one config (see :func:`cell_key`).
    """
    rows = []
    for r in results:
        c = r.config
        h = r.history
        rows.append({
            "key": c.key(), "cell": cell_key(c), "dataset": c.dataset, "partition": partition_label(c),
            "attack": attack_label(c), "aggregator": aggregator_label(c), "beta": c.beta, "seed": c.seed,
            "k": c.k, "k_m": c.n_byzantine, "epochs": c.epochs, "model": c.model,
            **{f"attack.{k}": v for k, v in c.attack_params.items()},
            **{f"aggregator.{k}": v for k, v in c.aggregator_params.items()},
            "final_accuracy": r.final_accuracy, "best_accuracy": float(h["test_accuracy"].max()) if len(h) else float("nan"),
            "final_train_loss": float(h["train_loss"].iloc[-1]) if len(h) else float("nan"),
            "diverged": r.diverged, "rounds": int(h["round"].iloc[-1]) if len(h) else 0,
            "seconds_per_round": r.meta.get("seconds_per_round"),
            "wall_seconds": r.meta.get("wall_seconds"),
            **{f"mean_{col}": float(r.rounds[col].mean()) for col in ("cos_delta", "cos_ref_benign", "cos_ref_byz", "clip_fraction") if col in r.rounds},
        })
    return pd.DataFrame(rows)


def paper_table4() -> pd.DataFrame:
    """The paper's Table IV: mean and std of the test accuracy (%) over its seeds, one row per cell."""
    from importlib import resources

    with resources.files("byzlab").joinpath("data_files/table4_paper.csv").open() as f:
        return pd.read_csv(f)


def table4(df: pd.DataFrame, *, ddof: int = 0, paper: bool = False) -> pd.DataFrame:
    """Table IV from a results table: final accuracy mean ± std over seeds per cell.

    ``df`` is :func:`results_table` output (or a sweep's ``results.csv``).  When it has
    an ``experiments`` column (sweeps write one), only the runs of the ``table4``
    experiment are used, so Fig. 12's other λ values never leak into a cell.  A cell
    must hold the seeds of a single config: rows that differ in anything else
    (e.g. z, epochs) raise ValueError rather than being averaged together.
    ``ddof=0``: the population std over seeds (numpy's default, as reference
    implementations compute it).  ``paper=True`` adds the paper's
    ``paper_mean`` and ``paper_std`` (merge on dataset, partition, attack, aggregator, beta).
    """
    if df is None or not len(df):
        raise ConfigError("df: empty results table; run the sweep first")
    missing = [c for c in (*TABLE4_KEYS, "final_accuracy", "seed") if c not in df.columns]
    if missing:
        raise ConfigError(f"df: not a results table, it lacks columns {missing}")
    if not isinstance(ddof, int) or isinstance(ddof, bool) or ddof < 0:
        raise ConfigError(f"ddof: must be an integer >= 0, got {ddof!r}")
    rows = df
    if "experiments" in rows.columns:
        rows = rows[rows["experiments"].fillna("").str.split(";").map(lambda names: "table4" in names)]
        if not len(rows):
            raise ConfigError("df: no run of the 'table4' experiment in this results table")
    rows = rows.assign(beta=rows["beta"].astype(float).round(6))
    keys = list(TABLE4_KEYS)
    if "cell" in rows.columns:
        mixed = rows.groupby(keys)["cell"].nunique()
        mixed = mixed[mixed > 1]
        if len(mixed):
            cell = dict(zip(keys, mixed.index[0]))
            raise ConfigError(f"df: the Table IV cell {cell} holds runs of {mixed.iloc[0]} different configs "
                             "(not only different seeds); filter the table first")
    grouped = rows.groupby(keys, sort=True)
    out = grouped["final_accuracy"].agg(
        accuracy_mean="mean",
        accuracy_std=lambda x: float(x.std(ddof=ddof)) if len(x) > ddof else float("nan"),
        n_seeds="count",
    ).reset_index()
    if "diverged" in rows.columns:
        out = out.merge(grouped["diverged"].sum().astype(int).rename("n_diverged").reset_index(), on=keys)
    if paper:  # alie_z1.2 (ALIE as run) sits beside the paper's ALIE row too
        ref = paper_table4().rename(columns={"accuracy_mean": "paper_mean", "accuracy_std": "paper_std",
                                             "attack": "_paper_attack"})
        ref["beta"] = ref["beta"].astype(float).round(6)
        out["_paper_attack"] = out["attack"].map(lambda a: PAPER_ATTACK.get(a, a))
        on = [k if k != "attack" else "_paper_attack" for k in keys]
        out = out.merge(ref, on=on, how="left").drop(columns="_paper_attack")
    return out
