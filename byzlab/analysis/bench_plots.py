"""The bench's figures (plotly, the style of :mod:`byzlab.analysis.plots`): a heatmap and a ranking chart.

* :func:`heatmap` — defences × attacks, mean final accuracy over seeds, one panel per β
  (and data set/partition); rows in leaderboard order, attacks strongest first, then ``none``;
* :func:`ranking` — the worst-case accuracy over attacks (mean ± std over seeds) per
  defence and β, beside the no-attack accuracy.

Save them with :func:`byzlab.analysis.plots.save` (``.html`` and ``.png``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from ..core.config import NO_ATTACK
from .plots import LAYOUT
from ..core.errors import ConfigError

__all__ = ["heatmap", "ranking"]


def _settings(frame: pd.DataFrame) -> list[tuple]:
    cols = [c for c in ("dataset", "partition") if c in frame.columns]
    return list(dict.fromkeys(frame[cols].itertuples(index=False, name=None))) if cols else [()]


def _select(frame: pd.DataFrame, setting: tuple) -> pd.DataFrame:
    for col, value in zip(("dataset", "partition"), setting):
        frame = frame[frame[col] == value]
    return frame


def _defence_order(board: pd.DataFrame) -> list[str]:
    """Defences by their mean rank over β and settings (best first)."""
    return list(board.groupby("defence")["rank"].mean().sort_values(kind="stable").index)


def heatmap(table: pd.DataFrame, board: pd.DataFrame, *, title: str | None = None,
            width: int | None = None) -> go.Figure:
    """Defences (rows) × attacks (columns): mean final accuracy (%) over seeds, one panel per β.

    ``board`` (:func:`byzlab.bench.leaderboard` of ``table``) orders the rows, best defence first.
    """
    if not isinstance(table, pd.DataFrame) or not len(table):
        raise ConfigError("table: expected a non-empty bench results table (byzlab.bench.results)")
    if "defence" not in table.columns:
        table = table.assign(defence=table["aggregator"])
    table = table.assign(beta=table["beta"].astype(float).round(6))
    defences = _defence_order(board)
    strength = table[table["attack"] != NO_ATTACK].groupby("attack")["final_accuracy"].mean().sort_values()
    attacks = list(strength.index) + ([NO_ATTACK] if (table["attack"] == NO_ATTACK).any() else [])
    panels = [(s, b) for s in _settings(table) for b in sorted(_select(table, s)["beta"].unique())]
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True, horizontal_spacing=0.02,
                        subplot_titles=[" ".join([*map(str, s), f"β = {b:g}"]) for s, b in panels])
    for j, (setting, beta) in enumerate(panels, start=1):
        part = _select(table, setting)
        part = part[part["beta"] == beta]
        mean = part.pivot_table(index="defence", columns="attack", values="final_accuracy", aggfunc="mean")
        mean = mean.reindex(index=defences, columns=attacks)
        n = part.groupby(["defence", "attack"])["seed"].nunique().unstack().reindex(index=defences, columns=attacks)
        z = mean.to_numpy(float)
        text = [[("–" if not np.isfinite(v) else f"{v:.1f}") for v in row] for row in z]
        fig.add_trace(go.Heatmap(
            z=z, x=[a if a != NO_ATTACK else "no attack" for a in attacks], y=defences, text=text,
            customdata=n.to_numpy(float), texttemplate="%{text}", textfont=dict(size=9), xgap=1, ygap=1,
            coloraxis="coloraxis",
            hovertemplate="%{y} vs %{x}<br>%{text}% (mean of %{customdata} seeds)<extra></extra>"), row=1, col=j)
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=10))
    fig.update_xaxes(tickangle=-45, tickfont=dict(size=10))
    fig.update_layout(**{**LAYOUT, "margin": dict(l=140, r=30, t=90, b=110)},
                      width=width or max(600, 130 + len(panels) * (40 * len(attacks) + 30)),
                      height=260 + 26 * len(defences),
                      title=dict(text=title or "Bench: final test accuracy (%) per defence and attack, mean over seeds",
                                 x=0),
                      coloraxis=dict(colorscale="Viridis", cmin=0, cmax=100,
                                     colorbar=dict(title="%", thickness=12)))
    return fig


def ranking(board: pd.DataFrame, *, title: str | None = None, width: int = 900) -> go.Figure:
    """Worst-case accuracy over attacks (bars, ± std over seeds) and no-attack accuracy (◆) per defence and β."""
    if not isinstance(board, pd.DataFrame) or not len(board) or "worst_mean" not in board.columns:
        raise ConfigError("board: expected a leaderboard (byzlab.bench.leaderboard)")
    defences = _defence_order(board)
    settings = _settings(board)
    fig = make_subplots(rows=1, cols=len(settings), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[" ".join(map(str, s)) for s in settings] if settings != [()] else None)
    betas = sorted(board["beta"].unique())
    colours = dict(zip(betas, sample_colorscale("Viridis", [0.15 + 0.7 * i / max(1, len(betas) - 1)
                                                            for i in range(len(betas))])))
    for j, setting in enumerate(settings, start=1):
        part = _select(board, setting)
        for beta in betas:
            rows = part[part["beta"] == beta].set_index("defence").reindex(defences)
            name, show = f"β = {beta:g}", j == 1
            fig.add_trace(go.Bar(
                y=defences, x=rows["worst_mean"], orientation="h", name=f"{name}: worst case", legendgroup=name,
                marker_color=colours[beta], error_x=dict(type="data", array=rows["worst_std"].fillna(0)),
                customdata=np.stack([rows["worst_attack"].fillna("–"), rows["rank"].fillna(0)], axis=1),
                hovertemplate="%{y}: %{x:.1f}% worst case (%{customdata[0]}), rank %{customdata[1]}<extra></extra>",
                showlegend=show), row=1, col=j)
            fig.add_trace(go.Scatter(
                y=defences, x=rows["clean_mean"], mode="markers", name=f"{name}: no attack", legendgroup=name,
                marker=dict(symbol="diamond", size=9, color=colours[beta], line=dict(width=1, color="#333")),
                hovertemplate="%{y}: %{x:.1f}% without attack<extra></extra>", showlegend=show), row=1, col=j)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(range=[0, 100], title_text="test accuracy (%)")
    fig.update_layout(**{**LAYOUT, "margin": dict(l=140, r=20, t=90, b=50)}, barmode="group", width=width,
                      height=220 + 22 * len(defences) * len(betas),
                      title=dict(text=title or "Bench: worst-case accuracy over attacks (bars, ± std over seeds) "
                                               "and without attack (◆)", x=0))
    return fig
