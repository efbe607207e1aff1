"""Why CC τ = 0.1 oscillates without an attack: m̃, its step and its alignment round by round.

Centered Clipping (Eq. 6, one iteration) moves its centre by the mean of the clipped differences,
so when every client is farther than τ from the centre, m̃ moves at most τ per round.  With
worker momentum β = 0.9 the clipped steps add up: ‖m̃‖ grows far beyond τ and needs ‖m̃‖/τ rounds to
turn, while θ steps η‖m̃‖ per round along it.  :func:`trace` runs one no-attack run and records,
per round t: ‖m̃_t‖ (the ``agg_norm`` diagnostic), the step of θ η_t‖m̃_t‖, the move of the centre
‖m̃_t − m̃_{t−1}‖, cos(m̃_t, m̄_t) with m̄_t the benign clients' mean momentum, the clip fraction and
the test accuracy at each evaluation.  :func:`figure` draws τ = 0.1 beside τ = 1.

    python -m byzlab.analysis.cc_dynamics --out figures          # mnist5k, mlp, β = 0.9, 300 rounds, constant η
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from ..core.config import RunConfig
from ..core.errors import ConfigError, one_line
from ..core.results import DIAGNOSTIC_COLUMNS
from ..core.simulator import Simulation

CLIP = DIAGNOSTIC_COLUMNS.index("clip_fraction")

#: the runs of the figure: no attack, CC at β = 0.9, the showcase's 300 rounds at a constant η
BASE = {"dataset": "mnist5k", "model": "mlp", "k": 25, "k_m": 0, "b": 32, "epochs": 60, "lr": 0.1,
        "lr_decay_at": 1.0, "beta": 0.9, "attack": "none", "aggregator": "cc", "seed": 0}
TAUS = (0.1, 1.0)


def trace(config: RunConfig) -> pd.DataFrame:
    """One row per round of ``config`` (a CC run): the quantities of the module docstring."""
    if config.aggregator != "cc":
        raise ConfigError(f"aggregator: the trace follows CC's centre, got {config.aggregator!r}")
    sim = Simulation(config)
    rows, prev = [], None
    while sim.t < sim.total_rounds and not sim.diverged:
        sim.advance(1)
        t, m = sim.t, sim.prev_aggregate
        mean = sim.X[: sim.k_b].mean(0)
        rows.append({"round": t, "norm": float(m.norm()), "step": sim.lr_at(t) * float(m.norm()),
                     "centre_move": float((m - prev).norm()) if prev is not None else float("nan"),
                     "cos_mean": float(torch.nn.functional.cosine_similarity(m, mean, dim=0)),
                     "clip_fraction": float(sim.round_diag[t - 1, CLIP]),
                     "test_accuracy": sim.history[-1]["test_accuracy"] if sim.history and
                     sim.history[-1]["round"] == t else float("nan")})
        prev = m.clone()
    return pd.DataFrame(rows)


def traces(taus=TAUS, **overrides) -> pd.DataFrame:
    """:func:`trace` of the :data:`BASE` run for each τ, stacked with a ``tau`` column."""
    return pd.concat([trace(RunConfig.make(**{**BASE, **overrides}, tau=tau)).assign(tau=tau) for tau in taus],
                     ignore_index=True)


def figure(frame: pd.DataFrame, title: str):
    """Four panels against rounds: test accuracy, ‖m̃‖ and the step η‖m̃‖, the centre's move per round
    (at most τ), cos(m̃, m̄); one colour per τ."""
    from plotly.subplots import make_subplots

    from .plots import LAYOUT

    panels = [("test_accuracy", "test accuracy (%)"), ("norm", "‖m̃_t‖ (solid) and η‖m̃_t‖ (dotted)"),
              ("centre_move", "‖m̃_t − m̃_{t−1}‖ (≤ τ when all are clipped)"), ("cos_mean", "cos(m̃_t, m̄_t)")]
    fig = make_subplots(rows=2, cols=2, subplot_titles=[p[1] for p in panels], horizontal_spacing=0.08,
                        vertical_spacing=0.14)
    colours = {TAUS[0]: "#d62728", TAUS[1]: "#1f77b4"}
    for i, (column, _) in enumerate(panels):
        r, c = divmod(i, 2)
        for tau, g in frame.groupby("tau"):
            g = g.dropna(subset=[column])
            colour = colours.get(tau, "#7f7f7f")
            fig.add_scatter(x=g["round"], y=g[column], mode="lines", line=dict(color=colour, width=1.4),
                            name=f"CC τ={tau:g}", legendgroup=str(tau), showlegend=i == 0, row=r + 1, col=c + 1)
            if column == "norm":
                fig.add_scatter(x=g["round"], y=g["step"], mode="lines", line=dict(color=colour, width=1, dash="dot"),
                                name=f"η‖m̃‖, τ={tau:g}", legendgroup=str(tau), showlegend=False, row=r + 1, col=c + 1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_xaxes(title_text="round", row=2)
    fig.update_layout(**{**LAYOUT, "margin": dict(l=60, r=20, t=110, b=50), "legend": dict(orientation="h", x=0, y=1.12)},
                      title=dict(text=title, x=0, y=0.98), width=1000, height=640)
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m byzlab.analysis.cc_dynamics", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="figures", help="folder of cc_tau_dynamics.png/.html/.csv (figures)")
    ap.add_argument("--model", default=BASE["model"], help="mlp (default) or cnn")
    ap.add_argument("--seed", type=int, default=0, help="seed (0)")
    ap.add_argument("--redraw", action="store_true", help="draw again from <out>/cc_tau_dynamics.csv, run nothing")
    args = ap.parse_args(argv)
    try:
        from .plots import save

        out = Path(args.out)
        if args.redraw:
            if not (out / "cc_tau_dynamics.csv").exists():
                raise ConfigError(f"redraw: {out / 'cc_tau_dynamics.csv'} not found; run without --redraw first")
            frame = pd.read_csv(out / "cc_tau_dynamics.csv")
        else:
            frame = traces(model=args.model, seed=args.seed)
            out.mkdir(parents=True, exist_ok=True)
            frame.round(5).to_csv(out / "cc_tau_dynamics.csv", index=False)
        title = (f"CC without an attack, β = 0.9: τ = 0.1 against τ = 1 (mnist5k, {args.model}, 300 rounds at "
                 f"a constant η = 0.1, seed {args.seed})")
        for path in save(figure(frame, title), "cc_tau_dynamics", out):
            print(path)
    except ConfigError as e:
        print(f"byzlab cc_dynamics: error: {one_line(e, typed=False)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
