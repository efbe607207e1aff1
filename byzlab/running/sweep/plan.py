"""What a sweep runs: a profile's grid expanded into runs, checked against the store, grouped into jobs.

:func:`make_plan` lists every distinct run of a profile (or of some of its
experiments) and splits them by whether the results store holds them;
:func:`make_jobs` groups the runs still to do into jobs, the unit a backend
(:mod:`byzlab.running.sweep.backends`) hands to one worker: one run, or several
compatible runs computed together by :class:`~byzlab.core.batched.BatchedSimulation`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from ...core.config import RunConfig
from ...core.errors import ConfigError
from ..experiments import Profile
from ..store import ResultStore


@dataclass
class Plan:
    """The runs of a profile and where each one stands in the store.

    ``configs`` is every distinct run in a stable order (experiments in profile
    order, grid order inside, seeds innermost); ``experiments`` maps a run key to
    the experiments it belongs to; ``done``/``todo`` split ``configs`` by whether
    the store holds the result; ``failed`` are the recorded errors of runs in ``todo``.
    """

    profile: Profile
    store: ResultStore
    configs: list[RunConfig]
    experiments: dict[str, tuple[str, ...]]
    done: list[RunConfig]
    todo: list[RunConfig]
    failed: dict[str, dict]

    @property
    def total(self) -> int:
        return len(self.configs)

    def counts(self) -> dict[str, int]:
        """Runs per experiment (a run shared by several experiments counts in each)."""
        c: Counter = Counter()
        for names in self.experiments.values():
            c.update(names)
        return {name: c[name] for name in self.profile.experiments if c[name]}


def make_plan(profile: Profile, store: ResultStore, experiments: Iterable[str] | None = None) -> Plan:
    """Expand ``profile`` (optionally only some ``experiments``) and check each run against ``store``."""
    names = list(experiments or profile.experiments)
    for name in names:
        if name not in profile.experiments:
            raise ConfigError(f"experiment: unknown {name!r} in profile {profile.name!r}; "
                              f"choose one of: {', '.join(profile.experiments)}")
    configs: list[RunConfig] = []
    member: dict[str, list[str]] = {}
    for name in names:
        for cfg in profile.experiment_configs(name):
            key = cfg.key()
            if key not in member:
                member[key] = []
                configs.append(cfg)
            if name not in member[key]:
                member[key].append(name)
    done, todo, failed = [], [], {}
    for cfg in configs:
        if store.contains(cfg):
            done.append(cfg)
        else:
            todo.append(cfg)
            err = store.error(cfg)
            if err is not None:
                failed[cfg.key()] = err
    return Plan(profile, store, configs, {k: tuple(v) for k, v in member.items()}, done, todo, failed)


def make_jobs(todo: list[RunConfig], batch: int) -> list[list[RunConfig]]:
    """Group runs into jobs of up to ``batch`` runs sharing a :func:`batch_key`, in plan order."""
    if batch <= 1:
        return [[c] for c in todo]
    from ...core.batched import batch_key

    groups: dict[tuple, list[RunConfig]] = {}
    for c in todo:
        groups.setdefault(batch_key(c), []).append(c)
    jobs = []
    for cfgs in groups.values():
        jobs += [cfgs[i: i + batch] for i in range(0, len(cfgs), batch)]
    order = {c.key(): i for i, c in enumerate(todo)}
    return sorted(jobs, key=lambda j: order[j[0].key()])
