"""Writing a file or a folder atomically: the one way byzlab writes what a reader may open.

:func:`write_atomic` has ``write`` fill a temporary sibling of the target (``.NAME.tmpPID``
for a file, ``.NAME.XXXXXXXX/`` for a folder) and renames it into place, so a process
killed at any instant leaves the old file or the new one, never half of one.  Those
temporary names are what :meth:`byzlab.running.store.ResultStore.clean_temporaries` removes.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["write_atomic", "temporary_name"]


def temporary_name(path: str | os.PathLike) -> Path:
    """The temporary sibling a file is written to before it is renamed to ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any], *, folder: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it to ``path``; returns ``path``.

    ``folder=False``: ``tmp`` is a file name (``write`` creates it) and replaces ``path`` in one
    ``os.replace``.  ``folder=True``: ``tmp`` is an empty folder that ``write`` fills; an existing
    ``path`` is moved aside, ``tmp`` renamed into place and the old folder removed.  When
    ``write`` raises, the temporary is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) if folder else temporary_name(path)
    try:
        write(tmp)
        if not folder:
            os.replace(tmp, path)
        elif path.exists():
            old = path.with_name(f".{path.name}.old{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    return path
