"""Shared by the dashboard tests (widgets and LiveSession): count Simulations built, poll a condition."""
from __future__ import annotations

import time

import pytest

import byzlab.core.simulator


@pytest.fixture
def built(monkeypatch):
    """Configs of every Simulation constructed (fresh runs and forks)."""
    configs = []
    original = byzlab.core.simulator.Simulation

    class Counting(original):
        def __init__(self, config=None, **kw):
            super().__init__(config, **kw)
            configs.append(self.config)

    monkeypatch.setattr(byzlab.core.simulator, "Simulation", Counting)
    return configs


def poll(cond, timeout: float = 60.0) -> None:
    """Wait until ``cond()`` holds (fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached")
        time.sleep(0.005)
