"""A dashboard setting as text: which rule parameters the sliders drive, the ``params``
box read into values, and the short label of a config shown in the legend."""
from __future__ import annotations

import ast
from typing import Any

from ..core.config import PAPER_KNOBS, RunConfig
from ..core.errors import ConfigError

__all__ = ["RULE_KNOBS", "knob_applies", "parse_params", "short_label"]

#: the paper's knobs with a slider (β, a config field, has one too; IPM's ε has none)
RULE_KNOBS = tuple(k for k in PAPER_KNOBS if k != "eps")


def knob_applies(rule, name: str) -> bool:
    """A slider drives a rule parameter only when the rule has it with a numeric default."""
    if rule is None or name not in rule.params:
        return False
    d = rule.params[name]
    return isinstance(d, (int, float)) and not isinstance(d, bool)


def parse_params(text: str) -> dict[str, Any]:
    """``"iters=2, eps=0.5, first_round=zero"`` -> ``{"iters": 2, "eps": 0.5, "first_round": "zero"}``."""
    out: dict[str, Any] = {}
    for item in (text or "").replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name.isidentifier() or not raw:
            raise ConfigError(f"params: cannot read {item!r}; write name=value, name=value")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = {"true": True, "false": False, "none": None}.get(raw.lower(), raw)
        out[name] = value
    return out


def short_label(cfg: RunConfig) -> str:
    """The legend's label: :meth:`RunConfig.label` (``rop(z=1,lam=0.9) vs cc(tau=1) β=0``)."""
    return cfg.label()
