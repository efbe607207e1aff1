"""A results store: finished runs on disk, keyed by the full run config.

``<root>/<key>/`` holds one :class:`~byzlab.core.results.RunResult` (see
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
import re
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..core.config import RunConfig
from .driver import run
from ..core.files import write_atomic
from ..core.results import RunResult
from .tables import results_table

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
        if isinstance(error, BaseException):
            message = f"{type(error).__name__}: {error}"
            tb = tb or "".join(traceback.format_exception(type(error), error, error.__traceback__))
        else:
            message = str(error)
        text = json.dumps({
            "key": cfg.key(), "config": cfg.to_dict(), "attempt": attempt,
            "error": message, "traceback": tb or "", "time": time.time(),
        }, indent=2, default=str)
        write_atomic(path, lambda tmp: tmp.write_text(text))

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
