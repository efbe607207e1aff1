"""The claims tables as Markdown (``byzlab claims``, ``python -m byzlab.analysis.showcase``, the README)."""
from __future__ import annotations

import math

import pandas as pd

from . import claims
from ..core import stats

__all__ = ["comparisons_markdown", "claims_markdown", "summary_markdown"]


def _seeds(v: float) -> str:
    return "–" if not isinstance(v, (int, float)) or math.isnan(v) else ("> 1000" if math.isinf(v) else f"{int(v)}")


def comparisons_markdown(detail: pd.DataFrame) -> str:
    """One Markdown table per data set, model and setting: every comparison's numbers and verdict."""
    lines = []
    for (dataset, model, setting), g in detail.groupby(list(claims.GROUP), sort=False):
        counts = g["verdict"].value_counts()
        lines += [f"**{dataset}, {model}, {setting}**: {len(g)} comparisons — "
                  + ", ".join(f"{v} {counts.get(v, 0)}" for v in claims.VERDICTS) + ".", "",
                  "| claim | ALIE z | where | A vs B | seeds | A − B [95 % CI] | B collapsed | baselines unstable "
                  "| verdict | seeds needed |", "|---|---|---|---|---|---|---|---|---|---|"]
        for _, r in g.iterrows():
            if r["verdict"] == claims.NOT_RUN:
                continue
            ci = f" [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]" if math.isfinite(r["ci_low"]) else ""
            col = (f"{r['lower_collapsed']}/{r['n_lower']} [{r['collapse_low']:.2f}, {r['collapse_high']:.2f}]"
                   if r["kind"] == "collapse" else f"{r['lower_collapsed']}/{r['n_lower']}")
            lines.append(f"| `{r['claim']}` | {r['alie'] or '–'} | {r['where']} | {r['higher']} vs {r['lower']}"
                         f"{f' (m = {r.margin:g})' if r['margin'] else ''} | {r['n_paired']} | {r['diff_mean']:+.1f}{ci} "
                         f"| {col} | {r['baseline_unstable'] or '–'} | **{r['verdict']}** | {_seeds(r['seeds_needed'])} |")
        lines.append("")
    return "\n".join(lines)


def claims_markdown(table: pd.DataFrame, detail: pd.DataFrame, status: str = "") -> str:
    """The claims of one model: per setting, one row per claim, then every comparison (in a details block)."""
    lines = [f"_{status}_", ""] if status else []
    for setting, g in table.groupby("setting", sort=False):
        model = ", ".join(dict.fromkeys(g["model"]))
        undecided = detail[(detail["setting"] == setting) & (detail["verdict"] == stats.UNDECIDED)]
        lines += [f"**{model}, {setting}** — claims: " + ", ".join(
            f"{v} {int((g['verdict'] == v).sum())}" for v in claims.VERDICTS) + f"; comparisons undecided: "
            f"{len(undecided)}" + (" (seeds each would need: " + ", ".join(
                f"{r['where']} {r['higher']} vs {r['lower']}: {_seeds(r['seeds_needed'])}"
                for _, r in undecided.iterrows()) + ")" if 0 < len(undecided) <= 6 else
                " (the seeds each would need: last column of the comparisons below)" if len(undecided) else "")
            + ".", "",
            "| claim | ALIE z | verdict | holds / not / undecided / unstable / not run | seeds | seeds needed |",
            "|---|---|---|---|---|---|"]
        for _, r in g.iterrows():
            counts = " / ".join(str(r[v.replace(" ", "_")]) for v in claims.VERDICTS)
            lines.append(f"| {r['text']} | {r['alie'] or '–'} | **{r['verdict']}** | {counts} | {r['n_seeds']} "
                         f"| {_seeds(r['seeds_needed'])} |")
        lines.append("")
    lines += ["<details><summary>Every comparison: paired mean difference A − B with its 95 % interval</summary>",
              "", comparisons_markdown(detail), "</details>", ""]
    return "\n".join(lines)


def summary_markdown(tables: list[pd.DataFrame]) -> str:
    """"Holds on both / on one / on neither" per claim and setting, across the models' claims tables."""
    s = claims.summary_table(pd.concat(tables, ignore_index=True))
    models = [c.removeprefix("verdict_") for c in s.columns if c.startswith("verdict_")]
    lines = [f"| claim | ALIE z | setting | {' | '.join(models)} | across the models |",
             "|---|---|---|" + "---|" * len(models) + "---|"]
    for _, r in s.iterrows():
        cells = " | ".join(str(r[f"verdict_{m}"]) if isinstance(r[f"verdict_{m}"], str) else "–" for m in models)
        lines.append(f"| {r['text']} | {r['alie'] or '–'} | {r['setting']} | {cells} | **{r['summary']}** |")
    return "\n".join(lines) + "\n"
