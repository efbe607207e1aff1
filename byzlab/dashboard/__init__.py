"""Live JupyterLab dashboard: move ROP's z and λ, CC's τ or the worker momentum β
and watch a short training run react, round by round.

>>> import byzlab
>>> dash = byzlab.dashboard()          # doctest: +SKIP   (displays itself in a notebook)
>>> dash.set(z=3.0)                    # doctest: +SKIP   (as if the slider had moved)

The package: :mod:`~byzlab.dashboard.session` (:class:`LiveSession`: the runs, the
fork/restart modes, the training thread and its errors, the no-attack baseline
cache; no widgets), :mod:`~byzlab.dashboard.view` (:class:`Dashboard`: the widgets
and the figure, what is shown) and :mod:`~byzlab.dashboard.labels` (the ``params``
box and the legend's labels).  ipywidgets and plotly are imported only when a
:class:`Dashboard` is built.
"""
from __future__ import annotations

import sys
import types
from typing import Any

from .labels import RULE_KNOBS, parse_params, short_label
from .session import DEFAULT_BETA, DEFAULT_EPOCHS, MODES, LiveRun, LiveSession, clear_caches
from .view import EMBEDDED, KNOBS, Dashboard

__all__ = ["Dashboard", "LiveSession", "LiveRun", "dashboard", "clear_caches", "parse_params", "short_label",
           "DEFAULT_BETA", "DEFAULT_EPOCHS", "KNOBS", "RULE_KNOBS", "EMBEDDED", "MODES"]


def dashboard(dataset: str | None = None, **kwargs: Any) -> Dashboard:
    """Build (and, unless ``autostart=False``, start) the live dashboard; display it as a notebook cell's result.

    Defaults are chosen to show the attack within a minute on a 2-core CPU: the
    embedded ``mnist5k`` (or ``digits``, much faster), 30 epochs, evaluation every
    round, ROP (z = 1, λ = 0.9) against CC (τ = 1) at β = :data:`DEFAULT_BETA` = 0
    (not the paper's 0.9: at β = 0 the attack shows within a minute) — raise β to
    see worker momentum's protection.  Any other keyword is a :class:`RunConfig`
    field (``k``, ``k_m``, ``b``, ``lr``, ``max_rounds``, ...) or a rule
    parameter (put into the ``params`` box).
    """
    return Dashboard(dataset, **kwargs)


# The name clash: ``byzlab.dashboard`` starts as the lazy function in ``byzlab/__init__.py``
# (so ``import byzlab`` imports no widgets), but importing this package or any module in it
# makes the import system set the attribute ``dashboard`` of ``byzlab`` to this package,
# replacing the function.  The simplest way to keep ``byzlab.dashboard(...)`` working either
# way is to make the package itself callable: its module object's class becomes a
# ModuleType subclass whose ``__call__`` is :func:`dashboard` (a module's ``__class__`` may
# be set to such a subclass).
class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Dashboard:
        return dashboard(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
