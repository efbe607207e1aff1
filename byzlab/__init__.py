"""byzlab — Byzantine attacks and robust aggregation in federated learning.

Reproduces "Byzantines can also Learn from History: Fall of Centered Clipping
in Federated Learning" (the ROP attack against Centered Clipping).

>>> import byzlab
>>> result = byzlab.run(dataset="digits", attack="rop", aggregator="cc", tau=1.0, beta=0.9, epochs=3)
>>> result.history[["round", "test_accuracy", "train_loss"]]   # doctest: +SKIP
"""
# The built-in rules, registered in one place: each of these modules registers its rules with the
# same decorators a plug-in uses (byzlab.core.registry), and this package is imported before any of its
# modules, so every byzlab module sees the built-ins registered.
from .core import aggregators, attacks, attacks_adaptive, attacks_garbage, defences
from .core.config import RunConfig, available
from .core.registry import ConfigError, register_aggregator, register_attack, register_pre_aggregator, load_plugin
from .core.results import RunResult
from .core.simulator import Simulation
from .running.driver import run

__version__ = "0.1.0"


def dashboard(*args, **kwargs):
    """The live JupyterLab dashboard (:func:`byzlab.dashboard.dashboard`); imports ipywidgets only when called."""
    from .dashboard import dashboard as _dashboard

    return _dashboard(*args, **kwargs)


__all__ = [
    "aggregators",
    "attacks",
    "attacks_adaptive",
    "attacks_garbage",
    "defences",
    "RunConfig",
    "RunResult",
    "Simulation",
    "run",
    "available",
    "ConfigError",
    "register_aggregator",
    "register_attack",
    "register_pre_aggregator",
    "load_plugin",
    "dashboard",
]
