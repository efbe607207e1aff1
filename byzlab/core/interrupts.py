"""Stopping cleanly: Ctrl-C (SIGINT) and SIGTERM honoured at the end of a round.

A run stopped mid-round would have updated the momenta but not θ and t; a
checkpoint saved then would not resume bit for bit.  :func:`stop_at_round_boundaries`
defers a signal to the end of the current round (marked by :func:`one_round`), where
:class:`RoundInterrupt` is raised; the sweep's command line uses
:func:`interrupt_on_signals` and its worker start-up :func:`sigint_ignored`.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class RoundInterrupt(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM honoured at the end of a round.

    Raised by :meth:`Simulation.advance` (and the batched equivalent) inside
    :func:`stop_at_round_boundaries`: the round and its evaluation are complete,
    so the state is consistent and a checkpoint saved now resumes bit for bit.
    A plain ``KeyboardInterrupt`` may come from the middle of a round, where the
    momenta are already updated but θ and t are not: never checkpoint on that.
    """


class _Rounds:
    """Signal state shared by the main thread's simulations and the handler."""

    stop = threading.Event()  # a stop was requested during a round
    in_round = False  # the main thread is inside a round


@contextlib.contextmanager
def stop_at_round_boundaries(escalate: bool = True) -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM stop a run at the end of its current round.

    A signal arriving during a round only sets a flag; the round finishes and
    ``advance`` raises :class:`RoundInterrupt`.  A signal arriving between rounds
    (loading data, writing results), or a second one with ``escalate``, raises
    ``KeyboardInterrupt`` at once.  Outside the main thread signals cannot be
    caught and nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if not _Rounds.in_round or (escalate and _Rounds.stop.is_set()):
            raise KeyboardInterrupt
        _Rounds.stop.set()

    _Rounds.stop.clear()
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _Rounds.stop.clear()


@contextlib.contextmanager
def one_round() -> Iterator[None]:
    """Mark one round of the main thread (see :func:`stop_at_round_boundaries`); raises
    :class:`RoundInterrupt` after it when a stop was requested during it."""
    main = threading.current_thread() is threading.main_thread()
    if main:
        _Rounds.in_round = True
    try:
        yield
    finally:
        if main:
            _Rounds.in_round = False
    if main and _Rounds.stop.is_set():
        _Rounds.stop.clear()
        raise RoundInterrupt


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while starting a worker process (which inherits it until it installs its own)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """On the command line, Ctrl-C (SIGINT) and SIGTERM stop a sweep like Ctrl-C (runs in progress are saved).

    SIGINT gets Python's own handler even when the process inherited it ignored
    (a command started in the background by a non-interactive shell), so an
    explicit SIGINT always interrupts.
    """
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
