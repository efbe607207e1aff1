"""Command-line options declared once: generated from the fields of a dataclass.

A field's type and default come from the dataclass, its help from the field's
``metadata["help"]``; ``metadata`` may also give ``flags`` (the spellings, default
``--field-name``), ``repeat`` (the option may be given several times, collected in a
list), ``type`` (an argparse ``type``) and ``choices``.  A ``bool`` field that defaults to True is
``--no-NAME`` (its help ``metadata["off"]``); one that defaults to False is ``--NAME``.  Every option's argparse default
is None, so :func:`given` returns only what the command line set — the options override
a config, a profile or a function's own defaults.

:func:`add_run_options` builds ``byzlab run``'s options (shared by ``byzlab sweep``) from
:class:`~byzlab.core.config.RunConfig`, plus the paper's knobs (:data:`~byzlab.core.config.PAPER_KNOBS`)
and ``--param``/``--pre-param``/``--plugin``; :func:`config_overrides` reads them back.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Iterable, Sequence

from ..core.config import NO_ATTACK, PAPER_KNOBS, RunConfig
from ..core.errors import ConfigError
from ..core.registry import AGGREGATORS, ATTACKS, PRE_AGGREGATORS, load_plugin

__all__ = ["add_field_options", "given", "add_run_options", "config_overrides", "parse_value", "key_values",
           "comma_list", "parse_seeds"]

#: RunConfig fields without an option of their own (``--param``/``--pre-param`` set the rules' parameters)
_NOT_OPTIONS = ("aggregator_params", "pre_aggregator_params", "attack_params", "progress_label")


def parse_value(text: str) -> Any:
    """``'0.5'`` → 0.5, ``'3'`` → 3, ``'true'`` → True, ``'none'`` → None, else the string."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def key_values(items: Sequence[str] | None, what: str) -> dict:
    """``["a=1", "b=x"]`` → ``{"a": 1, "b": "x"}`` (:func:`parse_value`); ConfigError naming ``what``."""
    out: dict = {}
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"{what}: expected NAME=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        out[name.strip()] = parse_value(value)
    return out


def comma_list(kind: type, ok: Callable[[Any], bool], what: str) -> Callable[[str], list]:
    """An argparse ``type`` reading ``"a,b,c"`` as a non-empty list of ``kind`` values that are all ``ok``."""
    def parse(text: str) -> list:
        try:
            values = [kind(s) for s in text.split(",") if s.strip()]
        except ValueError:
            values = []
        if not values or not all(ok(v) for v in values):
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
        return values
    return parse


#: ``--seeds 0,1,2``
parse_seeds = comma_list(int, lambda v: v >= 0, "integers >= 0")


# --------------------------------------------------------------------------- generated options
def _scalar(annotation: str) -> type | None:
    """The argparse type of a field annotation such as ``'int | None'`` (None for other types)."""
    kinds = {part.strip() for part in str(annotation).split("|")} - {"None"}
    if len(kinds) != 1:
        return None
    return {"int": int, "float": float, "str": str, "bool": bool}.get(kinds.pop())


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_field_options(group: Any, cls: type, *, only: Iterable[str] | None = None, skip: Iterable[str] = (),
                      extra_help: dict | None = None) -> None:
    """Add one option per field of the dataclass ``cls`` (those in ``only``, minus ``skip``) to ``group``."""
    wanted = None if only is None else set(only)
    for f in dataclasses.fields(cls):
        if f.name in skip or (wanted is not None and f.name not in wanted) or "help" not in f.metadata:
            continue
        meta, dash = f.metadata, f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        text = meta["help"] + (extra_help or {}).get(f.name, "")
        kind = meta.get("type") or _scalar(f.type)
        if kind is bool:
            flag = f"--no-{dash}" if default else f"--{dash}"
            group.add_argument(*meta.get("flags", (flag,)), dest=f.name, default=None,
                               action="store_false" if default else "store_true",
                               help=meta.get("off", f"not: {text}") if default else text)
            continue
        if default not in (None, (), [], "") and not isinstance(default, bool):
            text += f" ({_shown(default)})"
        extra = {"choices": meta["choices"]} if "choices" in meta else {}
        group.add_argument(*meta.get("flags", (f"--{dash}",)), dest=f.name, default=None, help=text,
                           type=None if meta.get("repeat") else kind or str,
                           action="append" if meta.get("repeat") else None,
                           metavar=meta.get("metavar", "NAME" if meta.get("repeat") else None), **extra)


def given(args: argparse.Namespace, cls: type) -> dict:
    """The fields of ``cls`` that the command line set (options left out are None)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}


# --------------------------------------------------------------------------- a run's options
def _names(table: Iterable[str], default: str | None = None) -> str:
    return ": " + ", ".join(n + (" (default)" if n == default else "") for n in table)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of a run (``byzlab run``; ``byzlab sweep``'s overrides), one per :class:`RunConfig` field."""
    from ..core.data import DATASET_SPECS
    from ..core.models import MODELS

    g = p.add_argument_group("run configuration (paper defaults, Section VI)")
    add_field_options(g, RunConfig, skip=_NOT_OPTIONS, extra_help={
        "dataset": _names(DATASET_SPECS), "model": _names(MODELS),
        "aggregator": _names(AGGREGATORS), "attack": _names([NO_ATTACK, *ATTACKS]),
        "pre_aggregators": _names(PRE_AGGREGATORS)})
    for knob, meaning in PAPER_KNOBS.items():
        g.add_argument(f"--{knob}", type=float, default=None, help=meaning)
    g.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="any other aggregator/attack parameter; repeatable")
    g.add_argument("--pre-param", action="append", metavar="PRE.NAME=VALUE",
                   help="pre-aggregator parameter, e.g. bucketing.s=2")
    g.add_argument("--plugin", action="append", default=None, metavar="MODULE",
                   help="import a module (or .py file) registering extra aggregators/attacks; repeatable")


def config_overrides(args: argparse.Namespace) -> dict:
    """The config keywords given on the command line (plugins imported first)."""
    for plugin in getattr(args, "plugin", None) or ():
        load_plugin(plugin)
    kw = {k: v for k, v in given(args, RunConfig).items() if k not in _NOT_OPTIONS}
    if "pre_aggregators" in kw:
        kw["pre_aggregators"] = tuple(kw["pre_aggregators"])
    for knob in PAPER_KNOBS:
        if getattr(args, knob, None) is not None:
            kw[knob] = getattr(args, knob)
    kw.update(key_values(getattr(args, "param", None), "--param"))
    pre_params: dict = {}
    for name, value in key_values(getattr(args, "pre_param", None), "--pre-param").items():
        if "." not in name:
            raise ConfigError(f"--pre-param: expected PRE.NAME=VALUE, got {name!r}")
        pre, pname = name.split(".", 1)
        pre_params.setdefault(pre, {})[pname] = value
    if pre_params:
        kw["pre_aggregator_params"] = pre_params
    return kw
