"""Test-session setup shared by the unit tests and the notebooks (nbval).

Every run the tests or the notebooks compute goes into a results store at
``$BYZLAB_CACHE``.  For the session it points at one fresh temporary folder:
the tests never touch the user's cache, and the notebooks, whose kernels
inherit this environment, share their runs (Table IV and Figs. 4–11 use the
same ones, computed once).  pytest-xdist workers share the controller's folder.

Torch runs one thread per process in the session (unless ``OMP_NUM_THREADS``
says otherwise): the notebooks' runs are tiny, and on a small or shared machine
several OpenMP threads per process oversubscribe the cores and make every run
many times slower.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_CACHE = pytest.StashKey[tuple]()


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("BYZLAB_TEST_CACHE"):
        # a pytest-xdist worker: share the controller's store (writes are atomic)
        config.stash[_CACHE] = (None, None)
        os.environ["BYZLAB_CACHE"] = os.environ["BYZLAB_TEST_CACHE"]
        return
    path = tempfile.mkdtemp(prefix="byzlab-test-cache-")
    config.stash[_CACHE] = (path, os.environ.get("BYZLAB_CACHE"))
    os.environ["BYZLAB_CACHE"] = os.environ["BYZLAB_TEST_CACHE"] = path
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_unconfigure(config: pytest.Config) -> None:
    path, previous = config.stash.get(_CACHE, (None, None))
    if path is None:
        return
    os.environ.pop("BYZLAB_TEST_CACHE", None)
    if previous is None:
        os.environ.pop("BYZLAB_CACHE", None)
    else:
        os.environ["BYZLAB_CACHE"] = previous
    shutil.rmtree(path, ignore_errors=True)
