"""Run results: the config plus tidy pandas tables, saved atomically to a folder."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .chain import DIAGNOSTIC_COLUMNS
from .config import RunConfig
from .errors import ConfigError
from .files import write_atomic

#: diagnostic columns added after results existed: a stored result without them reads them as NaN
LATER_COLUMNS = ("non_finite",)

HISTORY_COLUMNS = ("round", "epoch", "lr", "test_accuracy", "train_loss", *DIAGNOSTIC_COLUMNS, "diverged", "wall_time")
FORMAT_VERSION = 1


@dataclass
class RunResult:
    """What a run produced.

    ``history``: one row per evaluation — round, epoch, lr, test_accuracy (%),
    train_loss (mean benign mini-batch loss since the previous evaluation), the
    diagnostics (:data:`~byzlab.core.chain.DIAGNOSTIC_COLUMNS`) averaged over those
    rounds (``non_finite``: reply rows screened per round), diverged, wall_time (s of training).
    ``rounds``: one row per round — train_loss and the diagnostics.
    """

    config: RunConfig
    history: pd.DataFrame
    rounds: pd.DataFrame = field(default_factory=pd.DataFrame)
    meta: dict = field(default_factory=dict)

    @property
    def final_accuracy(self) -> float:
        """Test accuracy (%) at the last evaluation (chance level for a diverged run)."""
        return float(self.history["test_accuracy"].iloc[-1]) if len(self.history) else float("nan")

    @property
    def diverged(self) -> bool:
        return bool(len(self.history) and self.history["diverged"].iloc[-1])

    @property
    def key(self) -> str:
        return self.config.key()

    def summary(self) -> str:
        h = self.history
        last = h.iloc[-1] if len(h) else None
        if last is None:
            return f"{self.config.label()}: no evaluation"
        state = "DIVERGED, " if self.diverged else ""
        return (f"{self.config.label()} on {self.config.dataset}/{self.config.partition}: {state}"
                f"test accuracy {last['test_accuracy']:.2f}% after {int(last['round'])} rounds "
                f"(epoch {last['epoch']:.0f}), train loss {last['train_loss']:.4f}, "
                f"{self.meta.get('seconds_per_round', float('nan')) * 1e3:.1f} ms/round on {self.meta.get('device', '?')}")

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json``, ``history.csv``, ``rounds.csv``, ``meta.json`` into ``folder``.

        Written into a temporary sibling folder first and renamed into place, so an
        interrupted save never leaves a half-written result behind.
        """
        def fill(tmp: Path) -> None:
            (tmp / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2, sort_keys=True))
            self.history.to_csv(tmp / "history.csv", index=False)
            self.rounds.to_csv(tmp / "rounds.csv", index=False)
            (tmp / "meta.json").write_text(json.dumps(self.meta, indent=2, sort_keys=True))

        return write_atomic(folder, fill, folder=True)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "RunResult":
        """Read a folder written by :meth:`save` (ValueError if it is incomplete or unreadable)."""
        folder = Path(folder)
        try:
            config = RunConfig.from_dict(json.loads((folder / "config.json").read_text()), strict=False)
            meta = json.loads((folder / "meta.json").read_text())
            history = pd.read_csv(folder / "history.csv")
            rounds = pd.read_csv(folder / "rounds.csv")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"result: cannot read {folder}: {e}") from None
        for frame in (history, rounds):
            for col in LATER_COLUMNS:
                if col not in frame.columns and len(frame.columns):
                    frame.insert(frame.columns.get_loc("agg_norm") + 1 if "agg_norm" in frame.columns
                                 else len(frame.columns), col, float("nan"))
        missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
        if missing:
            raise ConfigError(f"result: {folder}/history.csv lacks columns {missing}")
        history["diverged"] = history["diverged"].astype(bool)
        return cls(config=config, history=history, rounds=rounds, meta=meta)
