"""The paper's figures with plotly, from the tidy frames of :mod:`byzlab.analysis.paper`.

* :func:`accuracy_grid` — Figs. 1, 3–11: a grid of subplots, rows = aggregators,
  columns = β, one curve per attack (mean over seeds, min–max band);
* :func:`curves_by` — Figs. 12–14: the same grid with one curve per value of a
  parameter (λ, z);
* :func:`partition_bars` — Fig. 2: class counts per client, stacked;
* :func:`table2_bars`, :func:`table3_bars` — Tables II–III beside the paper's values;
* :func:`table4_heatmap` — Table IV, byzlab beside the paper;
* :func:`save` — ``<name>.html`` (interactive, plotly.js from its CDN) and a static ``<name>.png``.

Every attack keeps its colour in every figure (:data:`ATTACK_COLORS`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from ..core.errors import ConfigError, one_line
from ..core.files import write_atomic
from .paper import AGGREGATOR_LABELS, ATTACK_LABELS, METRICS

__all__ = ["ATTACK_COLORS", "accuracy_grid", "curves_by", "partition_bars", "table2_bars", "table3_bars", "table4_heatmap", "save"]

#: one colour per attack, shared by all figures
ATTACK_COLORS = {
    "rop": "#d62728", "rop_s": "#8c564b", "alie": "#1f77b4", "alie_z1.2": "#1f77b4", "alie_alt": "#17becf",
    "ipm": "#ff7f0e",
    "label_flip": "#2ca02c", "bit_flip": "#9467bd", "minmax": "#e377c2", "minsum": "#bcbd22", "none": "#333333",
}
#: variants drawn dashed over their original, so that identical curves stay visible
ATTACK_DASH = {"rop_s": "dash", "alie_alt": "dash", "alie_z1.2": "dot"}
_FALLBACK = ("#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5")
METRIC_LABELS = {"test_accuracy": "test accuracy (%)", "train_loss": "train loss", "cos_delta": "cos(Δ_t, Δ_t−1)",
                 "cos_ref_benign": "cos to m̃_t−1, benign", "cos_ref_byz": "cos to m̃_t−1, Byzantine",
                 "clip_fraction": "CC clip fraction", "agg_norm": "‖m̃_t‖"}
_HUE_NAMES = {"lam": "λ", "z": "z", "tau": "τ", "beta": "β"}
#: the house style every byzlab figure starts from (also byzlab.analysis.bench_plots)
LAYOUT = dict(template="plotly_white", font=dict(size=11), margin=dict(l=60, r=20, t=70, b=50),
              legend=dict(orientation="h", yanchor="bottom", y=1.04, x=0, xanchor="left"))


def _check_columns(frame: pd.DataFrame, needed: Sequence[str], what: str = "frame") -> None:
    if not isinstance(frame, pd.DataFrame) or not len(frame):
        raise ConfigError(f"{what}: expected a non-empty DataFrame (byzlab.analysis.paper.curves)")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what}: lacks columns {missing}; build it with byzlab.analysis.paper.curves")


def _value_label(column: str, value) -> str:
    if column == "attack":
        return ATTACK_LABELS.get(value, str(value))
    if column == "aggregator":
        return AGGREGATOR_LABELS.get(value, str(value))
    if isinstance(value, float):
        return f"{_HUE_NAMES.get(column, column)} = {value:g}"
    return f"{_HUE_NAMES.get(column, column)} = {value}"


def _colours(column: str, values: Sequence) -> dict:
    if column == "attack":
        extra = iter(_FALLBACK * 4)
        return {v: ATTACK_COLORS.get(v) or next(extra) for v in values}
    if len(values) == 1:
        return {values[0]: "#1f77b4"}
    return dict(zip(values, sample_colorscale("Viridis", [i / (len(values) - 1) * 0.9 for i in range(len(values))])))


def _ordered(frame: pd.DataFrame, column: str) -> list:
    values = list(dict.fromkeys(frame[column]))
    order = {"attack": list(ATTACK_LABELS), "aggregator": list(AGGREGATOR_LABELS)}.get(column)
    if order:
        return sorted(values, key=lambda v: order.index(v) if v in order else len(order))
    try:
        return sorted(values)
    except TypeError:
        return values


def grid(frame: pd.DataFrame, metric: str = "test_accuracy", *, hue: str = "attack", row: str = "aggregator",
         col: str = "beta", x: str = "epoch", title: str | None = None, log_y: bool | None = None,
         height_per_row: int = 210, width: int = 1000) -> go.Figure:
    """Subplots rows × cols (``row``, ``col`` columns of ``frame``), one curve per ``hue`` value:
    the mean over seeds of ``metric`` against ``x``, with a min–max band when there are several seeds."""
    if metric not in METRICS:
        raise ConfigError(f"metric: unknown {metric!r}; choose one of: {', '.join(METRICS)}")
    _check_columns(frame, [metric, hue, row, col, x, "seed"])
    rows, cols, hues = _ordered(frame, row), _ordered(frame, col), _ordered(frame, hue)
    colours = _colours(hue, hues)
    fig = make_subplots(rows=len(rows), cols=len(cols), shared_xaxes=True, shared_yaxes=True,
                        column_titles=[_value_label(col, c) for c in cols],
                        row_titles=[_value_label(row, r) for r in rows],
                        horizontal_spacing=0.03, vertical_spacing=0.05 if len(rows) > 1 else 0.1)
    if log_y is None:
        log_y = metric in ("train_loss", "agg_norm")
    shown = set()
    groups = dict(list(frame.groupby([row, col, hue], sort=False)))
    for key in [(r, c, h) for r in rows for c in cols for h in hues if (r, c, h) in groups]:
        part = groups[key]
        i, j, h_val = rows.index(key[0]) + 1, cols.index(key[1]) + 1, key[2]
        values = part[metric].astype(float)
        if log_y:
            values = values.where(values > 0)
        stats = values.groupby(part[x]).agg(["mean", "min", "max", "count"]).sort_index()
        colour = colours[h_val]
        name = _value_label(hue, h_val)
        if stats["count"].max() > 1:
            xs = list(stats.index) + list(stats.index[::-1])
            ys = list(stats["max"]) + list(stats["min"][::-1])
            fig.add_trace(go.Scatter(x=xs, y=ys, fill="toself", mode="lines", line=dict(width=0),
                                     fillcolor=_alpha(colour, 0.15), hoverinfo="skip", showlegend=False,
                                     legendgroup=name), row=i, col=j)
        dash = ATTACK_DASH.get(h_val, "solid") if hue == "attack" else "solid"
        fig.add_trace(go.Scatter(x=stats.index, y=stats["mean"], mode="lines", name=name, legendgroup=name,
                                 line=dict(color=colour, width=1.6, dash=dash), showlegend=name not in shown,
                                 hovertemplate=f"{name}<br>{x} %{{x}}<br>{metric} %{{y:.3g}}<extra></extra>"),
                      row=i, col=j)
        shown.add(name)
    height = 130 + height_per_row * len(rows)
    top, bottom = 95, 50
    fig.update_layout(**{**LAYOUT, "margin": dict(l=60, r=25, t=top, b=bottom)}, height=height, width=width,
                      title=dict(text=title, x=0, xanchor="left", y=0.995, yanchor="top") if title else None)
    # the legend between the title and the column titles (20 px above the plotting area)
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1 + 24 / (height - top - bottom),
                                  x=0, xanchor="left"))
    fig.update_xaxes(title_text=x, row=len(rows))
    for i in range(1, len(rows) + 1):
        fig.update_yaxes(title_text=METRIC_LABELS.get(metric, metric) if i == (len(rows) + 1) // 2 else None,
                         row=i, col=1)
    if log_y:
        fig.update_yaxes(type="log")
    elif metric == "test_accuracy":
        fig.update_yaxes(range=[0, 100])
    return fig


def accuracy_grid(frame: pd.DataFrame, metric: str = "test_accuracy", *, hue: str = "attack",
                  title: str | None = None, **kw) -> go.Figure:
    """Figs. 1, 3–11: rows = aggregators (CC τ=0.1, CC τ=1, RFA, TM), columns = β, one curve per attack."""
    return grid(frame, metric, hue=hue, row="aggregator", col="beta", title=title, **kw)


def curves_by(frame: pd.DataFrame, hue: str, metric: str = "test_accuracy", *, title: str | None = None,
              **kw) -> go.Figure:
    """Figs. 12–14: the aggregator × β grid with one curve per value of ``hue`` (``"lam"``, ``"z"``…)."""
    _check_columns(frame, [hue])
    if frame[hue].isna().all():
        raise ConfigError(f"hue: column {hue!r} holds no values in these runs")
    return grid(frame, metric, hue=hue, row="aggregator", col="beta", title=title, **kw)


def _alpha(colour: str, alpha: float) -> str:
    if colour.startswith("#"):
        r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
        return f"rgba({r},{g},{b},{alpha})"
    m = re.match(r"rgba?\(([^)]*)\)", colour)
    r, g, b = [float(v) for v in m.group(1).split(",")[:3]]
    return f"rgba({r:g},{g:g},{b:g},{alpha})"


def partition_bars(counts: dict[str, pd.DataFrame], title: str | None = None, width: int = 1000,
                   height: int = 420) -> go.Figure:
    """Fig. 2: for each partition (``{"iid": df, "dirichlet": df}`` from
    :func:`byzlab.analysis.paper.partition_counts`), the class counts of every client as stacked bars."""
    if not isinstance(counts, dict) or not counts:
        raise ConfigError("counts: expected {'iid': DataFrame, 'dirichlet': DataFrame} (byzlab.analysis.paper.partition_counts)")
    def subtitle(kind: str, df: pd.DataFrame) -> str:
        if kind == "iid":
            return "IID"
        return f"non-IID, Dirichlet(α={df.attrs['alpha']:g})" if "alpha" in df.attrs else kind

    fig = make_subplots(rows=1, cols=len(counts), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[subtitle(k, df) for k, df in counts.items()])
    classes = list(next(iter(counts.values())).columns)
    palette = sample_colorscale("Turbo", [0.05 + 0.9 * i / max(len(classes) - 1, 1) for i in range(len(classes))])
    for j, df in enumerate(counts.values(), start=1):
        for c, colour in zip(classes, palette):
            fig.add_trace(go.Bar(x=df.index, y=df[c], name=f"class {c}", marker_color=colour, legendgroup=c,
                                 showlegend=j == 1 and len(classes) <= 20), row=1, col=j)
        fig.update_xaxes(title_text="client", row=1, col=j)
    fig.update_layout(**{**LAYOUT, "legend": dict(orientation="v", x=1.01, y=1)}, barmode="stack", bargap=0.15,
                      width=width, height=height, title=dict(text=title, x=0) if title else None)
    fig.update_yaxes(title_text="training samples", row=1, col=1)
    return fig


def _bars(groups: list[tuple[str, pd.DataFrame]], title: str | None, width: int, height: int,
          colours: dict[str, str] | None = None) -> go.Figure:
    """Grouped bars, one subplot per ``(subtitle, table)``: x = the table's columns, one bar per row
    (named by the row's label); rows named ``paper …`` are hatched."""
    fig = make_subplots(rows=1, cols=len(groups), shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=[g for g, _ in groups])
    shown: set[str] = set()
    for j, (_, table) in enumerate(groups, start=1):
        for n, (name, values) in enumerate(table.iterrows()):
            name = str(name)
            paper = name.startswith("paper")
            colour = (colours or {}).get(name) or ("#999999" if paper else _SERIES[n % len(_SERIES)])
            fig.add_trace(go.Bar(
                x=[str(c) for c in table.columns], y=values.to_numpy(float), name=name, legendgroup=name,
                showlegend=name not in shown, marker_color=colour, marker_pattern_shape="/" if paper else "",
                text=[f"{v:.2f}" if np.isfinite(v) else "" for v in values.to_numpy(float)],
                textposition="outside", textfont=dict(size=9)), row=1, col=j)
            shown.add(name)
    fig.update_layout(**{**LAYOUT, "margin": dict(l=60, r=20, t=120, b=40), "legend": dict(
        orientation="h", yanchor="bottom", y=1.1, x=0)}, barmode="group", width=width, height=height,
        title=dict(text=title, x=0, y=0.98, yanchor="top") if title else None)
    fig.update_yaxes(title_text="cosine similarity", row=1, col=1)
    return fig


_SERIES = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78")


def table2_bars(table: pd.DataFrame, title: str | None = None, width: int = 900, height: int = 420) -> go.Figure:
    """Table II (:func:`byzlab.analysis.paper.table2`): cos(Δ_t, Δ_{t−1}) per β, one bar per row
    (data set, partition, aggregator) and the paper's values hatched."""
    if not isinstance(table, pd.DataFrame) or not len(table):
        raise ConfigError("table: expected a non-empty DataFrame (byzlab.analysis.paper.table2)")
    rows = table.copy()
    rows.index = [" · ".join(AGGREGATOR_LABELS.get(str(v), str(v)) for v in (i if isinstance(i, tuple) else (i,))
                             if str(v)) for i in rows.index]
    return _bars([("", rows)], title, width, height)


def table3_bars(table: pd.DataFrame, title: str | None = None, width: int = 1000, height: int = 420) -> go.Figure:
    """Table III (:func:`byzlab.analysis.paper.table3`): one subplot per (data set, partition, τ); per β the
    cosine to CC's reference of the benign and the Byzantine momenta, beside the paper's (hatched)."""
    needed = ["benign", "byzantine", "paper_benign", "paper_byzantine"]
    if not isinstance(table, pd.DataFrame) or not len(table) or any(c not in table.columns for c in needed):
        raise ConfigError(f"table: expected a DataFrame with columns {needed} (byzlab.analysis.paper.table3)")
    names = {"benign": "benign", "byzantine": "Byzantine", "paper_benign": "paper: benign",
             "paper_byzantine": "paper: Byzantine (ROP)"}
    colours = {"benign": "#2ca02c", "Byzantine": "#d62728", "paper: benign": "#98df8a",
               "paper: Byzantine (ROP)": "#ff9896"}
    groups = []
    for (dataset, partition, tau), part in table.groupby(level=["dataset", "partition", "tau"], sort=False):
        rows = part.droplevel(["dataset", "partition", "tau"])[needed].rename(columns=names).T
        rows.columns = [f"β={b:g}" for b in rows.columns]
        groups.append((f"{dataset} {partition}, CC τ={tau:g}", rows))
    return _bars(groups, title, width, height, colours)


def table4_heatmap(compare: pd.DataFrame, title: str | None = None, width: int = 1000) -> go.Figure:
    """Table IV (:func:`byzlab.analysis.paper.table4_compare`) as heatmaps, one above the other: byzlab's final
    accuracy (mean ± std over seeds) and the paper's, side by side.  Rows: (data set, partition,
    attack), columns: (aggregator, β), as in the paper.

    A third panel, the difference byzlab − paper in percentage points with both standard
    deviations in each cell, is drawn only for the rows in the paper's setting (``same_setting``);
    when no row is (another data set or scale), the figure says so and shows no difference."""
    _check_columns(compare, ["dataset", "partition", "attack", "aggregator", "beta", "accuracy_mean",
                             "accuracy_std", "paper_mean", "paper_std", "difference"], "compare")
    from .paper import table4_wide

    ours = table4_wide(compare, "accuracy_mean")
    panels = {name: table4_wide(compare, name).reindex_like(ours)
              for name in ("accuracy_std", "paper_mean", "paper_std", "difference")}
    ylabels = [f"{d} {p} · {a}" for d, p, a in ours.index]
    block_of = dict(zip(zip(compare["dataset"], compare["partition"]),
                        zip(compare["paper_dataset"], compare["paper_partition"])))
    paper_ylabels = [f"{' '.join(block_of[(d, p)])} · {a}" for d, p, a in ours.index]
    xlabels = [f"{a} {b}" for a, b in ours.columns]
    blocks = list(dict.fromkeys(zip(compare["paper_dataset"], compare["paper_partition"])))
    several_seeds = int(compare["n_seeds"].max()) > 1 if "n_seeds" in compare else True
    d = panels["difference"].to_numpy(float)
    with_difference = bool(np.isfinite(d).any())
    notes = [n for n in dict.fromkeys(compare.get("setting", pd.Series(dtype=str)).fillna(""))
             if n and n != "same setting"]

    def text(mean: pd.DataFrame, std: pd.DataFrame, with_std: bool) -> list[list[str]]:
        return [[("–" if not np.isfinite(m) else f"{m:.1f}±{s:.1f}" if with_std and np.isfinite(s) else f"{m:.1f}")
                 for m, s in zip(rm, rs)] for rm, rs in zip(mean.to_numpy(float), std.to_numpy(float))]

    def difference_text(v: float, s_ours: float, s_paper: float) -> str:
        if not np.isfinite(v):
            return "–"
        fmt = lambda s: f"{s:.1f}" if np.isfinite(s) else "?"  # noqa: E731
        return f"{v:+.1f}<br>±{fmt(s_ours)} / ±{fmt(s_paper)}"

    n_rows = 3 if with_difference else 2
    titles = ["byzlab: final test accuracy (%)", f"paper ({', '.join(f'{d_} {p}' for d_, p in blocks)})"]
    if with_difference:
        titles.append("difference byzlab − paper (percentage points; byzlab's std / the paper's std)")
    fig = make_subplots(rows=n_rows, cols=1, shared_xaxes=True, vertical_spacing=0.06, subplot_titles=titles)
    kw = dict(x=xlabels, y=ylabels, texttemplate="%{text}", textfont=dict(size=9), xgap=1, ygap=1)
    fig.add_trace(go.Heatmap(z=ours.to_numpy(float), text=text(ours, panels["accuracy_std"], several_seeds),
                             coloraxis="coloraxis", hovertemplate="%{y}<br>%{x}<br>byzlab %{text}<extra></extra>",
                             **kw), row=1, col=1)
    fig.add_trace(go.Heatmap(z=panels["paper_mean"].to_numpy(float),
                             text=text(panels["paper_mean"], panels["paper_std"], True), coloraxis="coloraxis",
                             hovertemplate="%{y}<br>%{x}<br>paper %{text}<extra></extra>",
                             **{**kw, "y": paper_ylabels}), row=2, col=1)
    layout = {}
    if with_difference:
        s_ours, s_paper = panels["accuracy_std"].to_numpy(float), panels["paper_std"].to_numpy(float)
        span = float(np.nanmax(np.abs(d)))
        fig.add_trace(go.Heatmap(
            z=d, text=[[difference_text(v, a, b) for v, a, b in zip(*r)] for r in zip(d, s_ours, s_paper)],
            coloraxis="coloraxis2", hovertemplate="%{y}<br>%{x}<br>difference %{text}<extra></extra>",
            **{**kw, "textfont": dict(size=8)}), row=3, col=1)
        layout["coloraxis2"] = dict(colorscale="RdBu", cmid=0, cmin=-span, cmax=span,
                                    colorbar=dict(title="pp", len=0.3, y=0.15, thickness=12))
    if notes:  # another data set or scale than the paper's: say so, under the title
        fig.add_annotation(text="<br>".join(notes[:3]), xref="paper", yref="paper", x=0, y=1.0, yshift=40,
                           showarrow=False, xanchor="left", yanchor="bottom", align="left",
                           font=dict(size=11, color="#b22222"))
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=10))
    fig.update_xaxes(tickangle=-45, tickfont=dict(size=10), row=n_rows, col=1)
    fig.update_layout(
        **{**LAYOUT, "margin": dict(l=170, r=30, t=90 + 16 * min(len(notes), 3), b=90)}, width=width,
        height=230 + 16 * min(len(notes), 3) + n_rows * (20 * len(ylabels) + 40),
        title=dict(text=title, x=0, y=1, yref="container", yanchor="top", pad=dict(t=12)) if title else None,
        coloraxis=dict(colorscale="Viridis", cmin=0, cmax=100,
                       colorbar=dict(title="%", len=0.6 if with_difference else 0.9,
                                     y=0.68 if with_difference else 0.5, thickness=12)),
        **layout)
    return fig


# =========================================================================== files
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def save(fig: go.Figure, name: str, figures_dir: str | os.PathLike | None, *, scale: float = 1.0) -> list[Path]:
    """Write ``<figures_dir>/<name>.html`` (interactive; plotly.js from its CDN) and ``<name>.png``.

    ``figures_dir=None`` writes nothing (the figure is only shown).  When the static
    export fails (no kaleido, no Chrome), one line says so and only the HTML is written.
    Returns the paths written.
    """
    if figures_dir is None:
        return []
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"name: must be a file name of letters, digits, '_', '-', '.', got {name!r}")
    if not isinstance(scale, (int, float)) or not 0 < scale <= 4:
        raise ConfigError(f"scale: must be a number in (0, 4], got {scale!r}")
    folder = Path(figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = [write_atomic(folder / f"{name}.html", lambda tmp: fig.write_html(tmp, include_plotlyjs="cdn",
                                                                                 full_html=True))]
    png = folder / f"{name}.png"
    try:
        fig.write_image(png, scale=scale)
    except Exception as e:  # kaleido or Chrome missing or broken: the HTML is enough
        print(f"{png.name} not written (static export unavailable: {one_line(e)})")
    else:
        written.append(png)
    return written
