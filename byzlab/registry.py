"""Registries of aggregators, pre-aggregators and attacks.

Every rule is a plain function on a stacked ``(k, d)`` tensor of client vectors
(one row per client).  Registering it makes it usable everywhere a built-in is:
``byzlab.run``, the CLI (``--plugin my_module``), sweeps and the dashboard::

    import byzlab

    @byzlab.register_aggregator("norm_clipped_mean")
    def norm_clipped_mean(x, max_norm=1.0):
        scale = (max_norm / x.norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
        return (x * scale[:, None]).mean(0)

    byzlab.run(aggregator="norm_clipped_mean", attack="rop", epochs=5)

How arguments are filled
------------------------
The first positional parameter receives the stacked tensor (``x`` for
aggregators, ``benign`` for attacks).  Parameters whose *name* is one of the
context names below are filled by the simulator each round; every other
parameter must have a default (or be given a default at registration) and
becomes a tunable parameter (``--param name=value`` on the CLI, part of the
run's config and of its cache key).

Aggregator context names
    ``f`` / ``b`` / ``k_m``  number of Byzantine clients the server guards
    against (k_m, or ``agg_f`` when set); ``center`` / ``prev_aggregate``
    the previous aggregate m̃_{t−1} (zeros at t = 1 for ``center``, ``None``
    for ``prev_aggregate``); ``t`` the round (1-based); ``generator`` a seeded
    ``torch.Generator`` on the device.

Attack context names
    ``prev_aggregate`` m̃_{t−1} (``None`` at t = 1); ``byzantine`` the
    Byzantine clients' own honest momenta ``(k_m, d)`` computed on their own
    data (label-flipped when the attack is registered with
    ``flip_labels=True``); ``t``; ``k``; ``k_m``; ``lr`` (η_t); ``mask`` the
    boolean ROP-S layer mask ``(d,)``; ``generator``.

An attack returns one ``(d,)`` vector (sent by every Byzantine client, as in
the omniscient attacks of the paper) or a ``(k_m, d)`` tensor.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

AGGREGATOR_CONTEXT = frozenset({"f", "b", "k_m", "center", "prev_aggregate", "t", "generator"})
ATTACK_CONTEXT = frozenset({"prev_aggregate", "byzantine", "t", "k", "k_m", "lr", "mask", "generator"})


class ConfigError(ValueError):
    """A bad parameter value.  The message is one line naming the parameter and the allowed range."""


# --------------------------------------------------------------------------- checks
def positive(name: str, v: Any) -> str | None:
    return None if _is_number(v) and v > 0 else f"{name}: must be > 0, got {v!r}"


def non_negative(name: str, v: Any) -> str | None:
    return None if _is_number(v) and v >= 0 else f"{name}: must be >= 0, got {v!r}"


def unit_interval(name: str, v: Any) -> str | None:
    return None if _is_number(v) and 0 <= v <= 1 else f"{name}: must be in [0, 1], got {v!r}"


def positive_int(name: str, v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v >= 1
    return None if ok else f"{name}: must be an integer >= 1, got {v!r}"


def optional_positive_int(name: str, v: Any) -> str | None:
    return None if v is None else positive_int(name, v)


def one_of(*choices: str) -> Callable[[str, Any], str | None]:
    def check(name: str, v: Any) -> str | None:
        return None if v in choices else f"{name}: must be one of {', '.join(map(str, choices))}; got {v!r}"
    return check


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# --------------------------------------------------------------------------- rules
@dataclass
class Rule:
    """A registered aggregator, pre-aggregator or attack."""

    name: str
    fn: Callable
    kind: str  # "aggregator" | "pre_aggregator" | "attack"
    params: dict[str, Any]  # tunable parameter -> default
    context: tuple[str, ...]  # parameters filled by the simulator
    checks: dict[str, Callable[[str, Any], str | None]] = field(default_factory=dict)
    requires: Callable[[int, int], str | None] | None = None  # (n_inputs, f) -> error
    flip_labels: bool = False  # attack: Byzantine clients train on y -> C-1-y
    description: str = ""
    symbols: dict[str, str] = field(default_factory=dict)  # param -> paper symbol

    @property
    def needs_byzantine_data(self) -> bool:
        return "byzantine" in self.context

    def resolve(self, given: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults overlaid with ``given``; raises ConfigError for unknown names or bad values."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            valid = ", ".join(sorted(self.params)) or "none"
            raise ConfigError(f"{self.kind} '{self.name}': unknown parameter {unknown[0]!r}; valid: {valid}")
        out = {**self.params, **given}
        for name, value in out.items():
            default = self.params[name]
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = out[name] = float(value)
            check = self.checks.get(name)
            msg = check(name, value) if check else _type_check(name, value, default)
            if msg:
                raise ConfigError(msg)
        return out

    def describe(self) -> str:
        ps = ", ".join(
            f"{p}={v!r}" + (f" ({self.symbols[p]})" if p in self.symbols else "") for p, v in self.params.items()
        )
        return f"{self.name}({ps})" if ps else self.name


def _type_check(name: str, value: Any, default: Any) -> str | None:
    if default is None or value is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"{name}: must be true or false, got {value!r}"
    if isinstance(default, (int, float)):
        return None if _is_number(value) else f"{name}: must be a finite number, got {value!r}"
    if isinstance(default, str):
        return None if isinstance(value, str) else f"{name}: must be a string, got {value!r}"
    return None


AGGREGATORS: dict[str, Rule] = {}
PRE_AGGREGATORS: dict[str, Rule] = {}
ATTACKS: dict[str, Rule] = {}

_TABLES = {"aggregator": AGGREGATORS, "pre_aggregator": PRE_AGGREGATORS, "attack": ATTACKS}


def _register(kind: str, name: str | None, defaults: dict | None, **extra) -> Callable:
    context_names = ATTACK_CONTEXT if kind == "attack" else AGGREGATOR_CONTEXT

    def deco(fn: Callable) -> Callable:
        rule_name = name or fn.__name__
        sig = inspect.signature(fn)
        names = list(sig.parameters)
        if not names:
            raise TypeError(f"{kind} {rule_name!r}: the function must take the stacked tensor as first argument")
        params: dict[str, Any] = {}
        context: list[str] = []
        for pname in names[1:]:
            p = sig.parameters[pname]
            if pname in context_names:
                context.append(pname)
            elif defaults and pname in defaults:
                params[pname] = defaults[pname]
            elif p.default is not inspect.Parameter.empty:
                params[pname] = p.default
            elif p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            else:
                raise TypeError(
                    f"{kind} {rule_name!r}: parameter {pname!r} is neither a context name "
                    f"({', '.join(sorted(context_names))}) nor has a default"
                )
        doc = inspect.getdoc(fn) or ""
        rule = Rule(
            name=rule_name,
            fn=fn,
            kind=kind,
            params=params,
            context=tuple(context),
            description=extra.pop("description", None) or (doc.splitlines()[0] if doc else ""),
            **extra,
        )
        _TABLES[kind][rule_name] = rule
        return fn

    return deco


def register_aggregator(
    name: str | None = None,
    *,
    defaults: dict | None = None,
    checks: dict | None = None,
    requires: Callable[[int, int], str | None] | None = None,
    description: str | None = None,
    symbols: dict | None = None,
) -> Callable:
    """Decorator: register ``fn(x, ...) -> (d,)`` as an aggregator called ``name``."""
    return _register("aggregator", name, defaults, checks=checks or {}, requires=requires,
                     description=description, symbols=symbols or {})


def register_pre_aggregator(
    name: str | None = None,
    *,
    defaults: dict | None = None,
    checks: dict | None = None,
    description: str | None = None,
    symbols: dict | None = None,
) -> Callable:
    """Decorator: register ``fn(x, ...) -> (k', d)`` as a pre-aggregator (composable with any aggregator)."""
    return _register("pre_aggregator", name, defaults, checks=checks or {},
                     description=description, symbols=symbols or {})


def register_attack(
    name: str | None = None,
    *,
    defaults: dict | None = None,
    checks: dict | None = None,
    flip_labels: bool = False,
    description: str | None = None,
    symbols: dict | None = None,
) -> Callable:
    """Decorator: register ``fn(benign, ...) -> (d,) | (k_m, d)`` as an attack called ``name``."""
    return _register("attack", name, defaults, checks=checks or {}, flip_labels=flip_labels,
                     description=description, symbols=symbols or {})


def lookup(kind: str, name: str) -> Rule:
    """The registered rule, or a one-line ConfigError listing the valid names."""
    table = _TABLES[kind]
    if name not in table:
        valid = ", ".join(sorted(table))
        raise ConfigError(f"{kind}: unknown {name!r}; choose one of: {valid}")
    return table[name]


def load_plugin(module: str) -> None:
    """Import ``module`` (a dotted name or a path to a ``.py`` file) so its decorators register rules."""
    import importlib
    import importlib.util
    import os
    import sys

    try:
        if module.endswith(".py") or os.path.sep in module:
            path = os.path.abspath(module)
            if not os.path.exists(path):
                raise ConfigError(f"plugin: file not found: {module}")
            modname = "byzlab_plugin_" + os.path.splitext(os.path.basename(path))[0]
            spec = importlib.util.spec_from_file_location(modname, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[modname] = mod
            spec.loader.exec_module(mod)
        else:
            importlib.import_module(module)
    except ConfigError:
        raise
    except ImportError as e:
        raise ConfigError(f"plugin: cannot import {module!r}: {e}") from None
