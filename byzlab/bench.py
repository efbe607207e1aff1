"""``byzlab bench``: which defence survives?  Defences × attacks × β × seeds, one leaderboard.

>>> board = leaderboard(results("quick"))   # doctest: +SKIP

A bench is a profile (:mod:`byzlab.running.experiments`) with one experiment, ``bench``, whose
grid is ``defence × attack × beta`` (plus optional ``setting`` axes: data set, partition),
over the profile's seeds; the sweep machinery (:func:`byzlab.running.sweep.run_sweep`) computes
it — resumable after an interruption, local processes or Ray, one results store — and
this module turns the tidy results table into a leaderboard and two figures.

Shipped bench profiles: ``bench_quick`` (embedded ``digits``, a laptop CPU in minutes),
``bench_paper`` (the paper's data sets and settings, a GPU) and ``bench_ci`` (a tiny grid,
seconds: the notebook's default).

Defence and attack specs (``--defence``/``--attack``)::

    [FILE.py:][PRE+]...NAME[:PARAM=VALUE,...]

``cc``, ``cc:tau=0.1``, ``nnm+cm``, ``bucketing+cc:bucketing.s=3,tau=0.1`` (a
pre-aggregator's parameter as ``PRE.PARAM``), ``my_rules.py:my_defence:max_norm=0.5``
(the file is loaded with :func:`byzlab.load_plugin`, then its registered name is used);
attacks take the same form without pre-aggregators (``rop:z=10``).  A bad spec is a
one-line :class:`~byzlab.core.registry.ConfigError`.

Layout of ``<out>`` (besides the sweep's ``profile.yaml``, ``store/``, ``results.csv``)::

    leaderboard.csv, leaderboard.md      per defence and β, see :func:`leaderboard`
    bench_heatmap.html/.png              defences × attacks, mean final accuracy
    bench_ranking.html/.png              worst case (± std over seeds) and no-attack accuracy
    11_bench.ipynb                       the notebook rendered on these runs (it draws the figures)
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .core.errors import ConfigError, one_line
from .core.config import NO_ATTACK, RunConfig
from .running.experiments import Profile, load_profile
from .core.files import write_atomic
from .core.interrupts import interrupt_on_signals
from .running.options import comma_list, parse_value
from .core.registry import AGGREGATORS, ATTACKS, PRE_AGGREGATORS, load_plugin, lookup, plugin_path
from .running.sweep import dry_run, run_sweep
from .running.sweep.cli import SHARED, add_sweep_options, sweep_options
from .core.stats import DDOF

__all__ = ["Spec", "parse_defence", "parse_attack", "defence_label", "attack_label", "bench_profile",
           "notebook_profile", "label", "results", "leaderboard", "leaderboard_display", "leaderboard_markdown", "write_outputs",
           "add_parser"]

EXPERIMENT = "bench"
#: what ``--profile`` and the notebook's ``profile`` parameter stand for, besides bench profile names/files
CLI_ALIASES = {"quick": "bench_quick", "paper": "bench_paper", "ci": "bench_ci"}
NOTEBOOK_ALIASES = {"quick": "bench_ci"}
SYNTAX = "[FILE.py:][PRE+]...NAME[:PARAM=VALUE,...]"
_FILE = re.compile(r"^(?P<file>[^:]+\.py):(?P<rest>.+)$")


# =========================================================================== specs
@dataclasses.dataclass(frozen=True)
class Spec:
    """A parsed defence (aggregator with pre-aggregators and parameters) or attack."""

    kind: str  # "aggregator" | "attack"
    name: str
    params: dict
    pre: tuple = ()
    pre_params: dict = dataclasses.field(default_factory=dict)

    @property
    def label(self) -> str:
        return _label(self.kind, self.name, self.params, self.pre, self.pre_params)

    def entry(self) -> Any:
        """The profile grid entry: a mapping merged into the run config (an attack without parameters: its name)."""
        if self.kind == "attack":
            return {"attack": self.name, "attack_params": dict(self.params)} if self.params else self.name
        out: dict = {"aggregator": self.name, "aggregator_params": dict(self.params)}
        if self.pre:
            out["pre_aggregators"] = list(self.pre)
            out["pre_aggregator_params"] = {p: dict(v) for p, v in self.pre_params.items()}
        return out


def _parse(spec: str, kind: str) -> Spec:
    what = "defence" if kind == "aggregator" else "attack"

    def fail(msg: str) -> ConfigError:
        return ConfigError(f"{what} {spec!r}: {msg}")

    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"{what}: expected {SYNTAX}, got {spec!r}")
    text = spec.strip()
    m = _FILE.match(text)
    if m:
        load_plugin(m["file"])
        text = m["rest"]
    names, _, params_text = text.partition(":")
    parts = [p.strip() for p in names.split("+")]
    if not all(parts):
        raise fail(f"empty rule name; expected {SYNTAX}")
    *pre, name = parts
    if kind == "attack" and pre:
        raise fail("an attack takes no pre-aggregators")
    try:
        rule = lookup(kind, name)
    except ConfigError as e:
        if name in PRE_AGGREGATORS:
            raise fail(f"{name!r} is a pre-aggregator: end with an aggregator, e.g. {name}+cm") from None
        raise fail(str(e)) from None
    pre_rules = []
    for p in pre:
        try:
            pre_rules.append(lookup("pre_aggregator", p))
        except ConfigError as e:
            raise fail(str(e)) from None
    given: dict = {}
    pre_given: dict = {p: {} for p in pre}
    for item in filter(None, (s.strip() for s in params_text.split(","))) if params_text else ():
        if "=" not in item:
            raise fail(f"expected PARAM=VALUE, got {item!r}")
        pname, value = (s.strip() for s in item.split("=", 1))
        if "." in pname:
            owner, pname = pname.split(".", 1)
            if owner not in pre_given:
                raise fail(f"{owner}.{pname}: {owner!r} is not a pre-aggregator of this defence")
            pre_given[owner][pname] = parse_value(value)
        else:
            given[pname] = parse_value(value)
    try:
        resolved = rule.resolve(given)
        pre_resolved = {r.name: r.resolve(pre_given[r.name]) for r in pre_rules}
    except ConfigError as e:
        raise fail(str(e)) from None
    return Spec(kind, name, {k: resolved[k] for k in given}, tuple(pre),
                {p: {k: pre_resolved[p][k] for k in v} for p, v in pre_given.items() if v})


def parse_defence(spec: str) -> Spec:
    """``cc:tau=0.1``, ``nnm+cm``, ``my_rules.py:my_defence`` … (see the module docstring)."""
    return _parse(spec, "aggregator")


def parse_attack(spec: str) -> Spec:
    """``alie``, ``rop:z=10,lam=0.5``, ``my_attacks.py:my_attack`` … (see the module docstring)."""
    return _parse(spec, "attack")


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _shown(kind: str, name: str, params: dict) -> list[str]:
    """``k=v`` for the parameters that differ from the rule's defaults (all of them for an unknown rule)."""
    table = {"aggregator": AGGREGATORS, "pre_aggregator": PRE_AGGREGATORS, "attack": ATTACKS}[kind]
    defaults = table[name].params if name in table else {}
    return [f"{k}={_fmt(v)}" for k, v in params.items() if k not in defaults or defaults[k] != v]


def _label(kind: str, name: str, params: dict, pre=(), pre_params=None) -> str:
    shown = [f"{p}.{s}" for p in pre for s in _shown("pre_aggregator", p, (pre_params or {}).get(p, {}))]
    shown += _shown(kind, name, params)
    return "+".join([*pre, name]) + (":" + ",".join(shown) if shown else "")


def defence_label(cfg: RunConfig) -> str:
    """The shortest spec that gives this run's defence: ``cc``, ``cc:tau=0.1``, ``nnm+cm`` …"""
    return _label("aggregator", cfg.aggregator, cfg.aggregator_params, cfg.pre_aggregators,
                  cfg.pre_aggregator_params)


def attack_label(cfg: RunConfig) -> str:
    return cfg.attack if cfg.attack == NO_ATTACK else _label("attack", cfg.attack, cfg.attack_params)


# =========================================================================== profiles
def _check_names(prof: Profile, axes: Iterable[str]) -> None:
    """A profile naming a rule that is not registered: one line saying how to proceed."""
    grid = (prof.experiments[EXPERIMENT] or {}).get("grid") or {}
    for axis, kind, flag in (("attack", "attack", "--attack"), ("defence", "aggregator", "--defence")):
        if axis not in axes:
            continue
        for entry in grid.get(axis) or ():
            names = [entry] if isinstance(entry, str) else [entry.get(kind)] if isinstance(entry, dict) else []
            if isinstance(entry, dict):
                names += list(entry.get("pre_aggregators") or ())
            for n in names:
                if n and n != NO_ATTACK and n not in ATTACKS and n not in AGGREGATORS and n not in PRE_AGGREGATORS:
                    raise ConfigError(f"profile {prof.name!r} lists {axis} {n!r}, which is not registered in this "
                                      f"byzlab; choose the {axis}s with {flag} (or load its plug-in with --plugin)")


def bench_profile(profile: str | os.PathLike | Profile = "bench_quick", *, defences: Iterable[str] | None = None,
                  attacks: Iterable[str] | None = None, betas: Iterable[float] | None = None,
                  aliases: dict = CLI_ALIASES) -> Profile:
    """The bench profile with its ``defence``/``attack``/``beta`` axes replaced by the given specs.

    The no-attack baseline ``none`` is always part of the attacks (the leaderboard's
    no-attack accuracy).  Spec files (``my_rules.py:...``) are added to the profile's plugins.
    """
    if not isinstance(profile, Profile):
        profile = load_profile(aliases.get(str(profile), profile))
    if EXPERIMENT not in profile.experiments:
        raise ConfigError(f"profile: {profile.name!r} is not a bench profile (it has no {EXPERIMENT!r} experiment); "
                          "use bench_quick, bench_paper, bench_ci or a YAML file with one")
    defences, attacks = list(defences or ()), list(attacks or ())
    _check_names(profile, [a for a, given in (("defence", defences), ("attack", attacks)) if not given])
    spec = dict(profile.experiments[EXPERIMENT] or {})
    grid = dict(spec.get("grid") or {})
    plugins = list(profile.plugins)
    if defences:
        grid["defence"] = [parse_defence(d).entry() for d in defences]
    if attacks:
        grid["attack"] = [parse_attack(a).entry() for a in attacks]
    for text in [*defences, *attacks]:
        m = _FILE.match(text.strip())
        if m:
            plugins.append(plugin_path(m["file"]))
    if betas is not None:
        grid["beta"] = [float(b) for b in betas]
    if not any((a if isinstance(a, str) else a.get("attack")) == NO_ATTACK for a in grid.get("attack") or ()):
        grid["attack"] = [*(grid.get("attack") or ()), NO_ATTACK]
    experiments = {**profile.experiments, EXPERIMENT: {**spec, "grid": grid}}
    prof = dataclasses.replace(profile, experiments=experiments, plugins=list(dict.fromkeys(plugins)))
    prof.configs(EXPERIMENT)  # every run valid, or one line naming the bad value
    return prof


def notebook_profile(profile: str | os.PathLike | Profile = "quick") -> tuple[Profile, str]:
    """The runs a notebook's ``profile`` parameter stands for, as (profile, experiment).

    A bench profile (name or file, e.g. a bench's ``<out>/profile.yaml``): its ``bench`` grid.
    ``quick`` (the notebooks' default): ``bench_ci``, seconds on a CPU.  Any other profile
    (``paper``, a sweep's ``profile.yaml``): its ``table4`` grid — the paper's aggregators ×
    attacks, ranked from the runs its sweep computed.
    """
    if not isinstance(profile, Profile):
        profile = load_profile(NOTEBOOK_ALIASES.get(str(profile), profile))
    if EXPERIMENT in profile.experiments:
        return bench_profile(profile), EXPERIMENT
    if "table4" in profile.experiments:
        return profile, "table4"
    raise ConfigError(f"profile: {profile.name!r} has neither a {EXPERIMENT!r} nor a 'table4' experiment")


# =========================================================================== tables
def label(df: pd.DataFrame, profile: Profile, experiment: str = EXPERIMENT) -> pd.DataFrame:
    """The results table with a ``defence`` column and ``attack`` labels (with non-default parameters)."""
    configs = {c.key(): c for c in profile.configs(experiment)}
    df = df.copy()
    if not len(df):
        return df.assign(defence=pd.Series(dtype=str))
    df.insert(df.columns.get_loc("aggregator"), "defence",
              [defence_label(configs[k]) if k in configs else a for k, a in zip(df["key"], df["aggregator"])])
    df["attack"] = [attack_label(configs[k]) if k in configs else a for k, a in zip(df["key"], df["attack"])]
    return df


def results(profile: str | os.PathLike | Profile = "quick", *, store=None, compute: bool | None = None) -> pd.DataFrame:
    """The tidy results table (one row per run, :func:`label`-led) of the runs ``profile`` stands for
    (:func:`notebook_profile`), read from the results store.

    Missing runs are computed here only for profiles marked ``compute_in_notebook`` (``bench_ci``,
    ``quick``); otherwise a one-line error counts them (see :func:`byzlab.analysis.paper.results`).
    """
    from .analysis.paper import results as paper_results
    from .running.tables import results_table

    prof, experiment = notebook_profile(profile)
    runs = paper_results(prof, experiment, store=store, progress=False, compute=compute)
    return label(results_table(runs), prof, experiment)


def leaderboard(df: pd.DataFrame, *, ddof: int = DDOF) -> pd.DataFrame:
    """Per defence and β: the worst-case accuracy over attacks, the no-attack accuracy, the time per round.

    ``df`` is a bench results table (:func:`results`, or any :func:`byzlab.running.tables.results_table`;
    without a ``defence`` column the ``aggregator`` label is used).  Rows with attack ``none``
    are the no-attack baseline; all others are attacks.

    * ``worst_mean``, ``worst_std`` — the standard robustness score: for each seed the
      minimum final accuracy over the attacks, then its mean and std over seeds
      (``ddof=1``: the sample std, byzlab's one convention, :data:`byzlab.core.stats.DDOF`); ``n_seeds`` seeds,
      ``n_attacks`` attacks (a seed missing some attacks takes the minimum over those it has);
    * ``worst_attack`` — the attack achieving the per-seed minimum most often (ties: the one of
      lower mean accuracy), and ``worst_attack_seeds``, on how many seeds it did;
    * ``clean_mean``, ``clean_std`` — the no-attack accuracy over seeds (the cost of robustness);
    * ``seconds_per_round`` — median over the defence's runs at that β (attacks and no attack;
      the median keeps the few costly adaptive attacks from dominating);
    * ``rank`` — 1 = highest worst case, within each β (and data set/partition).

    Data set and partition are kept as columns (and grouped on) when present.
    """
    if df is None or not len(df):
        raise ConfigError("df: empty results table; run the bench first")
    missing = [c for c in ("attack", "beta", "seed", "final_accuracy") if c not in df.columns]
    if missing or not {"defence", "aggregator"} & set(df.columns):
        raise ConfigError(f"df: not a bench results table, it lacks columns {missing or ['defence']}")
    if not isinstance(ddof, int) or isinstance(ddof, bool) or ddof < 0:
        raise ConfigError(f"ddof: must be an integer >= 0, got {ddof!r}")
    df = df.assign(beta=df["beta"].astype(float).round(6), final_accuracy=df["final_accuracy"].astype(float))
    if "defence" not in df.columns:
        df = df.assign(defence=df["aggregator"])
    if "seconds_per_round" not in df.columns:
        df = df.assign(seconds_per_round=float("nan"))
    keys = [c for c in ("dataset", "partition") if c in df.columns] + ["defence", "beta"]
    dup = df.duplicated(keys + ["attack", "seed"])
    if dup.any():
        row = df[dup].iloc[0]
        raise ConfigError(f"df: several runs for defence {row['defence']!r}, attack {row['attack']!r}, "
                          f"β={row['beta']:g}, seed {row['seed']} (configs differing otherwise); filter the table first")
    attacked, clean = df[df["attack"] != NO_ATTACK], df[df["attack"] == NO_ATTACK]
    if not len(attacked):
        raise ConfigError("df: no attacked run (only the no-attack baseline); bench at least one attack")
    std = lambda x: float(x.std(ddof=ddof)) if len(x) > ddof else float("nan")  # noqa: E731
    per_seed = attacked.sort_values(["final_accuracy", "attack"], kind="stable").groupby(keys + ["seed"]).head(1)
    out = per_seed.groupby(keys)["final_accuracy"].agg(worst_mean="mean", worst_std=std, n_seeds="count")
    mean_acc = attacked.groupby(keys + ["attack"])["final_accuracy"].mean()
    wins = per_seed.groupby(keys + ["attack"]).size().rename("wins").reset_index()
    wins["mean"] = [mean_acc[tuple(r)] for r in wins[keys + ["attack"]].itertuples(index=False)]
    top = wins.sort_values(["wins", "mean", "attack"], ascending=[False, True, True], kind="stable")
    top = top.groupby(keys).head(1).set_index(keys)
    out["worst_attack"], out["worst_attack_seeds"] = top["attack"], top["wins"].astype(int)
    out["n_attacks"] = attacked.groupby(keys)["attack"].nunique()
    c = clean.groupby(keys)["final_accuracy"]
    out["clean_mean"], out["clean_std"] = c.mean(), c.agg(std) if len(clean) else float("nan")
    out["seconds_per_round"] = df.groupby(keys)["seconds_per_round"].median()
    out = out.reset_index()
    group = [k for k in keys if k != "defence"]
    out["rank"] = out.groupby(group)["worst_mean"].rank(ascending=False, method="min").astype(int)
    out = out.sort_values(group + ["rank", "defence"], kind="stable").reset_index(drop=True)
    first = group + ["rank", "defence"]
    return out[first + [c for c in out.columns if c not in first]]


def _pm(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.1f} ± {std:.1f}" if math.isfinite(std) else f"{mean:.1f}"


def leaderboard_display(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard as text columns: accuracies (%) as mean ± std over seeds, ms per round."""
    settings = [c for c in ("dataset", "partition") if c in board.columns and board[c].nunique() > 1]
    rows = [{**{c: str(r[c]) for c in settings}, "β": f"{r['beta']:g}", "rank": str(r["rank"]),
             "defence": r["defence"], "worst-case accuracy (%)": _pm(r["worst_mean"], r["worst_std"]),
             "worst attack": f"{r['worst_attack']} ({r['worst_attack_seeds']}/{r['n_seeds']} seeds)",
             "no-attack accuracy (%)": _pm(r["clean_mean"], r["clean_std"]),
             "ms/round": f"{r['seconds_per_round'] * 1e3:.1f}" if pd.notna(r["seconds_per_round"]) else "–"}
            for _, r in board.iterrows()]
    return pd.DataFrame(rows)


def leaderboard_markdown(board: pd.DataFrame) -> str:
    """The leaderboard as a Markdown table (:func:`leaderboard_display`)."""
    shown = leaderboard_display(board).assign(defence=lambda d: "`" + d["defence"] + "`")
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "|".join("---" for _ in shown.columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in shown.itertuples(index=False)]) + "\n"


def write_outputs(table: pd.DataFrame, out: str | os.PathLike, *, figures: bool = True) -> pd.DataFrame:
    """``leaderboard.csv``, ``leaderboard.md`` and (``figures``) the heatmap and ranking chart in ``out``."""
    from .analysis import bench_plots, plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    board = leaderboard(table)
    for name, write in (("leaderboard.csv", lambda p: board.to_csv(p, index=False)),
                        ("leaderboard.md", lambda p: p.write_text(leaderboard_markdown(board)))):
        write_atomic(out / name, write)
    if figures:
        plots.save(bench_plots.heatmap(table, board), "bench_heatmap", out)
        plots.save(bench_plots.ranking(board), "bench_ranking", out)
    return board


# =========================================================================== command line
_floats = comma_list(float, lambda v: 0 <= v < 1, "numbers in [0, 1)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """``byzlab bench``: registered by :mod:`byzlab.cli`."""
    p = subparsers.add_parser(
        "bench", help="rank defences by their worst-case accuracy over every attack",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate defences (built-in or plug-ins) against every attack of a bench profile (adaptive\n"
                    "ones included), for its β values and seeds, through the resumable sweep (local processes or\n"
                    "Ray, one results store), and write into --out:\n"
                    "  leaderboard.csv|.md   per defence and β: worst-case accuracy over attacks (min per seed,\n"
                    "                        then mean ± std over seeds) and the attack achieving it, the\n"
                    "                        no-attack accuracy (the cost of robustness), the time per round\n"
                    "  bench_heatmap.html|.png, bench_ranking.html|.png   defences × attacks; the ranking\n"
                    "  11_bench.ipynb        notebooks/11_bench.ipynb rendered on these runs",
        epilog=f"spec syntax (--defence, --attack): {SYNTAX}\n"
               "  cc   cc:tau=0.1   nnm+cm   bucketing+cc:bucketing.s=3,tau=0.1   my_rules.py:my_defence\n"
               "  rop:z=10,lam=0.5   my_attacks.py:my_attack:strength=2\n"
               "The no-attack baseline 'none' is always added. Interrupt at any moment; rerun the same command\n"
               "(or --resume --out DIR) to continue. Example:\n"
               "  byzlab bench --defence cc --defence tm --defence my_rules.py:my_defence --profile quick")
    p.add_argument("--defence", "--defense", action="append", default=None, metavar="SPEC",
                   help="a defence (repeatable; default: the profile's)")
    p.add_argument("--attack", action="append", default=None, metavar="SPEC",
                   help="an attack (repeatable; default: the profile's, adaptive attacks included)")
    p.add_argument("--beta", type=_floats, default=None, metavar="LIST", help="worker momenta β, e.g. 0,0.9")
    p.add_argument("--profile", default="bench_quick",
                   help="bench_quick (default; 'quick'), bench_paper ('paper'), bench_ci ('ci') or a .yaml file")
    p.add_argument("--plugin", action="append", default=None, metavar="MODULE",
                   help="import a module or .py file registering rules; repeatable")
    p.add_argument("--no-figures", action="store_true", help="only the leaderboard files")
    p.add_argument("--no-notebook", action="store_true",
                   help="write the figures directly instead of rendering notebooks/11_bench.ipynb into --out")
    add_sweep_options(p, only=SHARED, title="running the bench (as byzlab sweep)", out="benches/<profile>")
    p.set_defaults(func=_cmd_bench)
    return p


def _cmd_bench(args: argparse.Namespace) -> int:
    for plugin in args.plugin or ():
        load_plugin(plugin)
    if args.resume:
        if args.out is None:
            raise ConfigError("resume: give the bench's folder with --out")
        if args.defence or args.attack or args.beta or args.seeds:
            raise ConfigError("resume: continues the bench as it was started; drop --defence/--attack/--beta/--seeds")
        prof = str(Path(args.out) / "profile.yaml")
    else:
        prof = bench_profile(args.profile, defences=args.defence, attacks=args.attack, betas=args.beta)
    out = Path(args.out or Path("benches") / prof.name)
    options = sweep_options(args, plugins=tuple(args.plugin or ()), render=False)
    err = lambda line: print(line.replace("byzlab sweep", "byzlab bench"), file=sys.stderr)  # noqa: E731
    if args.dry_run:
        dry_run(prof, out, options)
        return 0
    with interrupt_on_signals():
        summary = run_sweep(prof, out, options, print_fn=err)
    swept = load_profile(out / "profile.yaml")
    table = label(summary.table, swept)
    notebook = not (args.no_figures or args.no_notebook)
    board = write_outputs(table, out, figures=not args.no_figures and not notebook)
    if notebook and not _render_notebook(out):
        write_outputs(table, out)  # the figures without the notebook
    print(leaderboard_markdown(board), end="")
    print(f"bench {swept.name}: {summary.done}/{summary.total} runs ({summary.computed} computed now), "
          f"{len(summary.failed)} failed; leaderboard: {out / 'leaderboard.md'}")
    for key, e in summary.failed.items():
        print(f"  failed {key}: {e}", file=sys.stderr)
    return 0 if summary.ok else 1


def _render_notebook(out: Path) -> bool:
    """Execute notebooks/11_bench.ipynb on the bench's runs into ``out`` (it writes the figures there too)."""
    import json

    from .running.figures import RenderError, render

    store = json.loads((out / "sweep.json").read_text())["store"]
    try:
        render(profile=str(out / "profile.yaml"), store=store, out=str(out), figures_dir=str(out),
               notebooks=["11_bench"], progress=False)
    except (RenderError, ConfigError, ImportError) as e:
        print(f"byzlab bench: the notebook was not rendered ({one_line(e, typed=False)}); writing the figures "
              "directly", file=sys.stderr)
        return False
    return True
