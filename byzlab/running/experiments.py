"""The paper's experiments as grids of run configs, read from profile files.

A profile (``byzlab/profiles/<name>.yaml``, or any YAML file you pass by path)
has a ``base`` config, a list of ``seeds`` and named ``experiments``; each
experiment has optional ``base`` overrides and a ``grid`` whose axes are
multiplied out.  An axis value is either a scalar for the axis' own field or
parameter (``beta: [0.0, 0.9]``) or a mapping merged into the config
(``aggregator: [{aggregator: cc, tau: 0.1}, {aggregator: tm}]``).

Two optional top-level keys complete a profile:

``overrides``
    Fields applied to *every* run last, after the experiment's base and grid
    (``{epochs: 3}``, ``{device: cuda}``).  ``byzlab sweep --epochs 3`` lands
    here, so that the profile file written beside a sweep's results expands to
    exactly the runs that were computed, for the notebooks too.
``plugins``
    Modules or ``.py`` files (relative to the profile file) registering extra
    aggregators or attacks used by the grid; imported when the profile is loaded.

The same run (same resolved config) appearing in several experiments —
Table IV and Figs. 4–11 share theirs — has the same key, so it is computed once.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import ConfigError, one_line
from ..core.config import RunConfig
from ..core.files import write_atomic
from ..core.registry import load_plugin, plugin_path

PROFILE_DIR = Path(__file__).resolve().parents[1] / "profiles"


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
    overrides: dict = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    path: Path | None = None
    #: whether a notebook may compute this profile's missing runs itself (``compute_in_notebook:``
    #: in the YAML; true for ``quick``); otherwise :func:`byzlab.analysis.paper.results` points to ``byzlab sweep``
    compute_in_notebook: bool = False

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
            try:
                cfg = RunConfig.make(**kw)
                if self.overrides:
                    cfg = RunConfig.make(cfg, **self.overrides)
            except ConfigError as e:  # name the experiment: the profile is a file people edit
                raise ConfigError(f"profile {self.name!r}, experiment {experiment!r}: {e}") from None
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

    def membership(self) -> dict[str, tuple[str, ...]]:
        """Run key -> the experiments it belongs to (a run shared by Table IV and Fig. 3 lists both)."""
        out: dict[str, list[str]] = {}
        for name in self.experiments:
            for cfg in self.experiment_configs(name):
                names = out.setdefault(cfg.key(), [])
                if name not in names:
                    names.append(name)
        return {k: tuple(v) for k, v in out.items()}

    def with_seeds(self, seeds: list[int]) -> "Profile":
        """The same grid over other seeds (experiment-level ``seeds`` are replaced too)."""
        _check_seeds(seeds, "seeds")
        experiments = {name: {k: v for k, v in (spec or {}).items() if k != "seeds"}
                       for name, spec in self.experiments.items()}
        return dataclasses.replace(self, seeds=list(seeds), experiments=experiments)

    def with_overrides(self, **overrides: Any) -> "Profile":
        """The same grid with ``overrides`` applied to every run (after the grid)."""
        return dataclasses.replace(self, overrides={**self.overrides, **overrides})

    def to_dict(self) -> dict:
        """The profile as a YAML-ready mapping; :func:`load_profile` of it gives the same runs."""
        d = {"name": self.name, "description": self.description, "seeds": list(self.seeds),
             "base": _plain(self.base), "experiments": _plain(self.experiments)}
        if self.overrides:
            d["overrides"] = _plain(self.overrides)
        if self.plugins:
            d["plugins"] = list(self.plugins)
        if self.notebook_parameters:
            d["notebook_parameters"] = _plain(self.notebook_parameters)
        return d

    def save(self, path: str | os.PathLike) -> Path:
        """Write the profile as YAML (temporary file + rename: never half-written)."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        return write_atomic(path, lambda tmp: tmp.write_text(text))


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively, so that ``yaml.safe_dump`` accepts the value."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_seeds(seeds: Any, where: str) -> None:
    if not isinstance(seeds, list) or not seeds or \
            not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"{where}: must be a non-empty list of integers >= 0, got {seeds!r}")


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
        raise ConfigError(f"profile: {path} is not valid YAML: {one_line(e, typed=False)}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"profile: {path} must be a mapping with 'base', 'seeds' and 'experiments'")
    if not isinstance(spec.get("experiments"), dict) or not spec["experiments"]:
        raise ConfigError(f"profile: {path} needs an 'experiments' mapping")
    _check_seeds(spec.get("seeds", [0]), "profile: 'seeds'")
    for name, exp in spec["experiments"].items():
        exp = exp or {}
        if not isinstance(exp, dict):
            raise ConfigError(f"profile: experiment {name!r} must be a mapping with 'base' and 'grid'")
        for axis, values in (exp.get("grid") or {}).items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"profile: experiment {name!r}, grid axis {axis!r} must be a non-empty list, "
                                  f"got {values!r}")
        if "seeds" in exp:
            _check_seeds(exp["seeds"], f"profile: experiment {name!r} 'seeds'")
    for key in ("base", "overrides"):
        if not isinstance(spec.get(key) or {}, dict):
            raise ConfigError(f"profile: {key!r} must be a mapping of config fields, got {spec[key]!r}")
    plugins = spec.get("plugins") or []
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError(f"profile: 'plugins' must be a list of module names or .py files, got {plugins!r}")
    plugins = [plugin_path(p, base=path.parent) for p in plugins]
    for plugin in plugins:
        load_plugin(plugin)
    return Profile(
        name=spec.get("name", path.stem),
        base={**(spec.get("base") or {}), **base_overrides},
        seeds=spec.get("seeds", [0]),
        experiments=spec["experiments"],
        description=spec.get("description", ""),
        notebook_parameters=spec.get("notebook_parameters") or {},
        overrides=dict(spec.get("overrides") or {}),
        plugins=plugins,
        path=path.resolve(),
        compute_in_notebook=_flag(spec.get("compute_in_notebook", False), "compute_in_notebook"),
    )


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"profile: {name!r} must be true or false, got {value!r}")
    return value
