"""byzlab's simulator beside Flower: the same defence, seeds, partition and initial model."""
from __future__ import annotations

from typing import Iterable

from ..core.errors import ConfigError
from .apps import run_flower


#: rounds and seeds of :func:`compare` per profile (the notebooks' ``profile`` parameter)
COMPARE_PROFILES = {"quick": (30, (0, 1, 2)), "paper": (150, (0, 1, 2, 3, 4))}


def compare(*, profile: str = "quick", attack: str = "rop", aggregator: str = "cc", rounds: int | None = None,
            seeds: Iterable[int] | None = None, dataset: str = "digits", k: int = 10, n_byzantine: int = 2,
            lr: float = 0.1, b: int = 32, beta: float = 0.0, partition: str = "iid", params: dict | None = None,
            attack_params: dict | None = None):
    """The same defence in byzlab's simulator and in Flower (in process), same seeds, partition and initial model.

    ``profile`` sets rounds and seeds (:data:`COMPARE_PROFILES`; a profile ``.yaml`` file counts as
    ``quick``).  Returns a pandas DataFrame, one row per (engine, seed): final test accuracy (%),
    mean CC clip fraction, mean cosine of the benign and Byzantine updates to m̃_{t−1}."""
    import pandas as pd

    from ..running.driver import run

    if profile not in COMPARE_PROFILES and not str(profile).endswith((".yaml", ".yml")):
        raise ConfigError(f"profile: must be one of {', '.join(COMPARE_PROFILES)} or a profile .yaml file; "
                          f"got {profile!r}")
    default_rounds, default_seeds = COMPARE_PROFILES.get(profile, COMPARE_PROFILES["quick"])
    rounds = default_rounds if rounds is None else rounds
    rows = []
    for seed in default_seeds if seeds is None else seeds:
        cfg = dict(dataset=dataset, attack=attack if n_byzantine else "none", aggregator=aggregator, k=k,
                   k_m=n_byzantine, b=b, lr=lr, beta=beta, seed=seed, partition=partition, max_rounds=rounds,
                   epochs=10**6, eval_every=rounds, lr_decay=1.0, **(params or {}), **(attack_params or {}))
        res = run(**cfg)
        r = res.rounds
        rows.append({"engine": "byzlab", "seed": seed, "test_accuracy": res.final_accuracy,
                     "clip_fraction": _mean(r, "clip_fraction"), "cos_benign": _mean(r, "cos_ref_benign"),
                     "cos_byzantine": _mean(r, "cos_ref_byz")})
        result, _ = run_flower(dataset=dataset, attack=attack, aggregator=aggregator, k=k, n_byzantine=n_byzantine,
                               rounds=rounds, lr=lr, b=b, beta=beta, seed=seed, partition=partition, params=params,
                               attack_params=attack_params)
        tm = result.train_metrics_clientapp
        rows.append({"engine": "flower", "seed": seed,
                     "test_accuracy": result.evaluate_metrics_serverapp[rounds]["test-accuracy"],
                     "clip_fraction": _mean_metric(tm, "clip_fraction"), "cos_benign": _mean_metric(tm, "cos_ref_benign"),
                     "cos_byzantine": _mean_metric(tm, "cos_ref_byz")})
    return pd.DataFrame(rows)


#: what :func:`agreement` accepts as seed noise: test accuracy (points), clip fraction and cosines
TOLERANCE = {"test_accuracy": 10.0, "clip_fraction": 0.15, "cos_benign": 0.15, "cos_byzantine": 0.15}


def summary(table):
    """Mean and standard deviation over seeds, per engine (rows) and quantity (columns)."""
    return table.drop(columns="seed").groupby("engine").agg(["mean", "std"])


def agreement(table) -> str:
    """One line per quantity: whether the engines' means over seeds differ by less than :data:`TOLERANCE`.

    Only verdicts and counts are printed, so the text is the same on every platform and torch build."""
    means = table.drop(columns="seed").groupby("engine").mean()
    n = table.groupby("engine").size()
    lines = [f"{int(n.get('byzlab', 0))} byzlab runs, {int(n.get('flower', 0))} Flower runs (same seeds, partition, "
             "initial model)"]
    for col, tol in TOLERANCE.items():
        a, b = means.loc["byzlab", col], means.loc["flower", col]
        if a != a and b != b:  # NaN in both: not measured (e.g. no attack)
            lines.append(f"{col}: not measured")
            continue
        verdict = "agree" if abs(a - b) < tol else "DIFFER"
        lines.append(f"{col}: {verdict} (difference of the means {'<' if verdict == 'agree' else '>='} {tol:g})")
    return "\n".join(lines)


def figure(table, title: str = "byzlab's simulator and Flower, same defence and attack"):
    """A plotly bar chart: mean ± std over seeds of each quantity, one bar per engine."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = list(TOLERANCE)
    stats = summary(table)
    fig = make_subplots(rows=1, cols=len(cols), subplot_titles=cols)
    for engine in stats.index:
        for j, col in enumerate(cols, start=1):
            fig.add_trace(go.Bar(x=[engine], y=[stats.loc[engine, (col, "mean")]], name=engine, showlegend=j == 1,
                                 error_y={"type": "data", "array": [stats.loc[engine, (col, "std")]]},
                                 marker_color="#1f77b4" if engine == "byzlab" else "#ff7f0e"), row=1, col=j)
    return fig.update_layout(title=title, height=360, width=1000)


def _mean(frame, col: str) -> float:
    return float(frame[col].mean()) if col in frame else float("nan")


def _mean_metric(per_round: dict, key: str) -> float:
    vals = [m[key] for m in per_round.values() if key in m]
    return sum(vals) / len(vals) if vals else float("nan")
