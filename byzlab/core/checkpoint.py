"""Checkpoints of a run in progress: saving and restoring one (the cadence is :class:`byzlab.running.driver.Driver`'s).

A checkpoint is :meth:`Simulation.state_dict` written atomically
(:func:`byzlab.core.files.write_atomic`), so a run killed at any moment leaves either the previous
checkpoint or the new one, never half a file.  Resuming from it continues the
run bit for bit.

A checkpoint that cannot be read, or that another config wrote, is never
silently discarded: by default it is a one-line :class:`CheckpointError`
naming the file; with ``on_bad="move"`` it is moved aside (``<file>.bad``,
``<file>.bad1``, …) and the run starts afresh, saying so on stderr.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, one_line
from .files import write_atomic

ON_BAD = ("error", "move")


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used; the message names the file and the way out."""


def save(sim: Any, path: str | os.PathLike) -> None:
    """Write ``sim``'s state to ``path`` atomically."""
    import torch

    state = sim.state_dict()
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def restore(sim: Any, path: str | os.PathLike, on_bad: str = "error") -> int:
    """Continue ``sim`` from the checkpoint at ``path`` if there is one; returns the round it starts from.

    ``on_bad``: ``"error"`` raises :class:`CheckpointError` for an unreadable
    checkpoint or one written by another config; ``"move"`` moves it aside and
    starts from round 0.  Either way ``sim`` is untouched by a bad file (it fails
    before any state is set).
    """
    import torch

    if on_bad not in ON_BAD:
        raise ConfigError(f"on_bad: must be one of {', '.join(ON_BAD)}, got {on_bad!r}")
    path = Path(path)
    if not path.exists():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(state, dict) or "identity" not in state:
            raise ValueError("not a byzlab checkpoint")
        if state["identity"] != sim.config.identity():
            raise ValueError("written by a run with a different config")
        sim.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 - any failure to read it is reported the same way
        reason = one_line(e, typed=False)
        if on_bad == "error":
            raise CheckpointError(
                f"checkpoint: cannot resume from {path} ({reason}); delete it, or pass "
                f"--bad-checkpoint move (Python: bad_checkpoint='move') to move it aside and start afresh"
            ) from None
        aside = _free_name(path)
        os.replace(path, aside)
        print(f"byzlab: checkpoint {path} unusable ({reason}); moved to {aside}, starting afresh", file=sys.stderr)
        return 0
    return sim.t


def _free_name(path: Path) -> Path:
    for i in range(1000):
        cand = path.with_name(path.name + (".bad" if i == 0 else f".bad{i}"))
        if not cand.exists():
            return cand
    raise OSError(f"checkpoint: no free name to move {path} aside")

