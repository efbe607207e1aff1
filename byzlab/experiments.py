"""The paper's experiments as grids of run configs, read from profile files.

A profile (``byzlab/profiles/<name>.yaml``, or any YAML file you pass by path)
has a ``base`` config, a list of ``seeds`` and named ``experiments``; each
experiment has optional ``base`` overrides and a ``grid`` whose axes are
multiplied out.  An axis value is either a scalar for the axis' own field or
parameter (``beta: [0.0, 0.9]``) or a mapping merged into the config
(``aggregator: [{aggregator: cc, tau: 0.1}, {aggregator: tm}]``).

The same run (same resolved config) appearing in several experiments —
Table IV and Figs. 4–11 share theirs — has the same key, so it is computed once.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import RunConfig
from .registry import ConfigError

PROFILE_DIR = Path(__file__).parent / "profiles"


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


@dataclass
class Profile:
    name: str
    base: dict
    seeds: list[int]
    experiments: dict[str, dict]
    description: str = ""
    notebook_parameters: dict = field(default_factory=dict)

    def experiment_configs(self, experiment: str, **filters: Any) -> list[RunConfig]:
        """The configs of one experiment (all seeds), optionally filtered by config fields or params."""
        if experiment not in self.experiments:
            raise ConfigError(f"experiment: unknown {experiment!r} in profile {self.name!r}; "
                              f"choose one of: {', '.join(self.experiments)}")
        spec = self.experiments[experiment] or {}
        base = {**self.base, **(spec.get("base") or {})}
        seeds = spec.get("seeds", self.seeds)
        grid = spec.get("grid") or {}
        axes = [[(name, v) for v in values] for name, values in grid.items()]
        out = []
        for combo in itertools.product(*axes, [("seed", s) for s in seeds]):
            kw = dict(base)
            for name, value in combo:
                if isinstance(value, dict):
                    kw.update(value)
                else:
                    kw[name] = value
            cfg = RunConfig.make(**kw)
            if _matches(cfg, filters):
                out.append(cfg)
        return out

    def configs(self, experiment: str | None = None, **filters: Any) -> list[RunConfig]:
        """All distinct configs (of one experiment, or of the whole profile), in a stable order."""
        names = [experiment] if experiment else list(self.experiments)
        seen, out = set(), []
        for name in names:
            for cfg in self.experiment_configs(name, **filters):
                if cfg.key() not in seen:
                    seen.add(cfg.key())
                    out.append(cfg)
        return out


def _matches(cfg: RunConfig, filters: dict) -> bool:
    for name, want in filters.items():
        if hasattr(cfg, name):
            have = getattr(cfg, name)
        elif name in cfg.aggregator_params:
            have = cfg.aggregator_params[name]
        elif name in cfg.attack_params:
            have = cfg.attack_params[name]
        else:
            return False
        if isinstance(want, (list, tuple, set)):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


def load_profile(name_or_path: str | os.PathLike = "quick", **base_overrides: Any) -> Profile:
    """Load a shipped profile (``quick``, ``paper``) or a YAML file; ``base_overrides`` patch its base."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ConfigError(f"profile: unknown {str(name_or_path)!r}; choose one of: {', '.join(profile_names())} "
                              "or a path to a .yaml file")
    elif not path.exists():
        raise ConfigError(f"profile: file not found: {path}")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"profile: {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(spec.get("experiments"), dict) or not spec["experiments"]:
        raise ConfigError(f"profile: {path} needs an 'experiments' mapping")
    seeds = spec.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and s >= 0 for s in seeds) or not seeds:
        raise ConfigError(f"profile: 'seeds' must be a non-empty list of integers >= 0, got {seeds!r}")
    return Profile(
        name=spec.get("name", path.stem),
        base={**(spec.get("base") or {}), **base_overrides},
        seeds=seeds,
        experiments=spec["experiments"],
        description=spec.get("description", ""),
        notebook_parameters=spec.get("notebook_parameters") or {},
    )
