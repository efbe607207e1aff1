r"""Garbage as an attack: Byzantine clients that send NaN, $\pm\infty$ or huge vectors.

Not in the paper.  Each attack sends one vector from every Byzantine client
(Algorithm 1, line 11), built from the benign mean $\bar m_t$ so that only the
garbage part differs from an honest-looking reply.  Under the server's default
policy (``non_finite="drop"``, :mod:`byzlab.core.chain`) these rows are screened out
before the rules run and counted in the ``non_finite`` diagnostic; under
``non_finite="propagate"`` (the paper's plain server) they show what each rule
does with them: one NaN coordinate is not trimmed by TM or CM, and makes CC's
and RFA's whole vector NaN.
"""
from __future__ import annotations

import torch

from .registry import positive, register_attack

__all__ = ["nan_entry", "inf_entries", "huge"]


def nan_entry(benign: torch.Tensor) -> torch.Tensor:
    r"""The benign mean with its first coordinate NaN:
    $m_{byz} = (\mathrm{NaN}, [\bar m_t]_2, \dots, [\bar m_t]_d)$."""
    out = benign.mean(0)
    out[:1] = float("nan")
    return out


def inf_entries(benign: torch.Tensor) -> torch.Tensor:
    r"""The benign mean with its first two coordinates $+\infty$ and $-\infty$:
    $m_{byz} = (+\infty, -\infty, [\bar m_t]_3, \dots, [\bar m_t]_d)$ (one coordinate when d = 1)."""
    out = benign.mean(0)
    out[:1] = float("inf")
    out[1:2] = float("-inf")
    return out


def huge(benign: torch.Tensor, scale: float = 1e30) -> torch.Tensor:
    r"""A finite but huge vector against the benign direction: $m_{byz} = -s\,\bar m_t$ with
    $s$ = ``scale`` ($10^{30}$: in float32 its squared norm overflows, so the default
    server screens it): IPM (:func:`byzlab.core.attacks.ipm`, Xie et al., the paper's [60]) with an
    absurd $\varepsilon$."""
    return benign.mean(0).mul_(-scale)


register_attack("nan", description="garbage: the benign mean with one NaN coordinate")(nan_entry)
register_attack("inf", description="garbage: the benign mean with a +inf and a -inf coordinate")(inf_entries)
register_attack("huge", checks={"scale": positive}, symbols={"scale": "s"},
                description="garbage: -1e30 times the benign mean (finite, squared norm overflows float32)")(huge)
