"""Registries of aggregators, pre-aggregators and attacks.

Every rule is a plain function on a stacked ``(k, d)`` tensor of client vectors
(one row per client).  Registering it makes it usable everywhere a built-in is:
``byzlab.run``, the CLI (``--plugin my_module``), sweeps and the dashboard::

    import byzlab

    @byzlab.register_aggregator("norm_clipped_mean")
    def norm_clipped_mean(x, max_norm=1.0):
        scale = (max_norm / x.norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
        return (x * scale[:, None]).mean(0)

    byzlab.run(aggregator="norm_clipped_mean", attack="rop", epochs=5)

How arguments are filled
------------------------
The first positional parameter receives the stacked tensor (``x`` for
aggregators and pre-aggregators, ``benign`` for attacks).  Parameters whose
*name* is a field of :class:`RoundContext` (the round context, the one place
these names are defined) are filled by the simulator each round; every other
parameter must have a default (or be given a default at registration) and
becomes a tunable parameter (``--param name=value`` on the CLI, part of the
run's config and of its cache key).

Aggregators and pre-aggregators may take the context names in
:data:`AGGREGATOR_CONTEXT`; attacks those in :data:`ATTACK_CONTEXT` (the
attacker is omniscient: it also knows the true ``k_m``, the Byzantine clients'
own momenta and the ROP-S mask).  The server does not know how many clients
are Byzantine, so an aggregator gets ``f`` (what it guards against), never
``k_m``.

An attack returns one ``(d,)`` vector (sent by every Byzantine client, as in
the omniscient attacks of the paper) or a ``(k_m, d)`` tensor.

Registering a second rule under a name already taken is an error unless
``replace=True`` is passed.
"""
from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ConfigError


@dataclass(frozen=True)
class RoundContext:
    """What the simulator hands a rule in round t: the documented contract for plug-ins.

    Each field is passed to a rule that names it as a parameter (see the module
    docstring); one name, one meaning.

    Attributes
    ----------
    t
        The round, 1-based (Algorithm 1, line 2).
    k
        Clients in the run (benign and Byzantine), i.e. rows of the matrix
        the server aggregates (before any pre-aggregator).
    k_m
        Byzantine clients actually present (0 for the ``none`` baseline).
        Attacks only: the server does not know it.
    f
        Byzantine clients the server guards against: the config's ``agg_f``,
        or ``k_m`` when ``agg_f`` is unset.  Trimmed mean trims ``f`` per side,
        Krum scores with ``f``, NNM mixes ``k − f`` neighbours.
    lr
        The learning rate η_t of this round (after decay).
    prev_aggregate
        The previous aggregate m̃_{t−1}, ``None`` at t = 1.
    center
        The same m̃_{t−1}, but a zero vector at t = 1 (the CC reference of
        Eq. 6 before any aggregate exists).
    generator
        The run's seeded ``torch.Generator``, on the CPU whatever the run's
        device (random choices of bucketing, S-CC, …): draw with
        :func:`byzlab.core.draws.draw` (``device=x.device``) so that a seed is
        one set of draws on CPU and CUDA.
    byzantine
        Attacks only: the Byzantine clients' own honest momenta ``(k_m, d)``
        computed on their own data (label-flipped for ``flip_labels`` attacks);
        an empty ``(0, d)`` tensor when the attack does not ask for them.
    mask
        Attacks only: the boolean ROP-S layer mask ``(d,)`` (Eq. 20), or
        ``None`` when the attack does not ask for it.
    state
        A dict private to this rule and this run, kept across rounds and saved
        in checkpoints (tensors, numbers, lists): the history of a stateful
        rule.  Empty at t = 1.
    server_update
        Aggregators only: the server's own momentum ``(d,)`` on its root data
        (``root_size`` training samples, same b, β and η as the clients), for
        rules that trust the server's direction (FLTrust).  Asking for it makes
        the server train each round; ``None`` otherwise.
    aggregate
        Attacks only: the server's configured rule (its screening of non-finite
        rows, pre-aggregators, then the aggregator: :mod:`byzlab.core.chain`) as a
        function of a trial ``(k, d)`` matrix, evaluated on
        copies of the rules' states and of the RNG, so calling it changes
        nothing — what an omniscient, defence-aware attacker can simulate
        (adaptive attacks).  Each call costs one aggregation.
    """

    t: int
    k: int
    k_m: int
    f: int
    lr: float
    prev_aggregate: Any
    center: Any
    generator: Any
    byzantine: Any = None
    mask: Any = None
    state: dict = field(default_factory=dict)
    server_update: Any = None
    aggregate: Any = None


#: context names an aggregator or pre-aggregator may take
AGGREGATOR_CONTEXT = frozenset({"t", "k", "f", "lr", "prev_aggregate", "center", "generator", "state",
                                "server_update"})
#: context names an attack may take
ATTACK_CONTEXT = frozenset({"t", "k", "k_m", "f", "lr", "prev_aggregate", "center", "generator",
                            "byzantine", "mask", "state", "aggregate"})
_RETIRED = {"b": "use 'f', the number of Byzantine clients the server guards against",
            "k_m": "an aggregator cannot know the true k_m; use 'f' (agg_f, or k_m when unset)"}


#: what the server does with a non-finite reply row before its rules run (``RunConfig.non_finite``,
#: :mod:`byzlab.core.chain`): screen it out as a Byzantine reply, or hand it to the rules as it is
NON_FINITE_POLICIES = ("drop", "propagate")


def check_policy(value: Any, name: str = "non_finite") -> str:
    """``value`` if it is one of :data:`NON_FINITE_POLICIES`, else a one-line ConfigError."""
    if value not in NON_FINITE_POLICIES:
        raise ConfigError(f"{name}: must be one of {', '.join(NON_FINITE_POLICIES)}; got {value!r}")
    return value


# --------------------------------------------------------------------------- checks
def positive(name: str, v: Any) -> str | None:
    return None if _is_number(v) and v > 0 else f"{name}: must be > 0, got {_shown(v)}"


def non_negative(name: str, v: Any) -> str | None:
    return None if _is_number(v) and v >= 0 else f"{name}: must be >= 0, got {_shown(v)}"


def unit_interval(name: str, v: Any) -> str | None:
    return None if _is_number(v) and 0 <= v <= 1 else f"{name}: must be in [0, 1], got {_shown(v)}"


def positive_int(name: str, v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v >= 1
    return None if ok else f"{name}: must be an integer >= 1, got {_shown(v)}"


def optional_positive_int(name: str, v: Any) -> str | None:
    return None if v is None else positive_int(name, v)


def one_of(*choices: str) -> Callable[[str, Any], str | None]:
    def check(name: str, v: Any) -> str | None:
        return None if v in choices else f"{name}: must be one of {', '.join(map(str, choices))}; got {v!r}"
    return check


def _shown(v: Any) -> str:
    """``v`` as a message shows it: a value of the wrong type is named with its type (``str '1.0'``)."""
    is_num = isinstance(v, (int, float)) and not isinstance(v, bool)
    return repr(v) if is_num or v is None else f"{type(v).__name__} {v!r}"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# --------------------------------------------------------------------------- rules
@dataclass
class Rule:
    """A registered aggregator, pre-aggregator or attack."""

    name: str
    fn: Callable
    kind: str  # "aggregator" | "pre_aggregator" | "attack"
    params: dict[str, Any]  # tunable parameter -> default
    context: tuple[str, ...]  # parameters filled by the simulator
    checks: dict[str, Callable[[str, Any], str | None]] = field(default_factory=dict)
    requires: Callable[[int, int], str | None] | None = None  # (n_inputs, f) -> error
    flip_labels: bool = False  # attack: Byzantine clients train on y -> C-1-y
    description: str = ""
    symbols: dict[str, str] = field(default_factory=dict)  # param -> paper symbol
    aliases: tuple[str, ...] = ()  # other accepted spellings of ``name`` (see :func:`lookup`)
    #: aggregator: the parameter that is a clip radius around ``center`` (CC's τ): turns on the
    #: ``clip_fraction`` diagnostic (:mod:`byzlab.core.chain`)
    clip_radius: str | None = None
    #: what replaces a screened (non-finite) reply row when this rule is the first of the chain:
    #: ``"mean"`` (of the finite rows) or ``"center"`` (``RoundContext.center``); see :mod:`byzlab.core.chain`
    non_finite_fill: str = "mean"
    #: pre-aggregator: rows it returns from k rows, ``rows(k, params)`` (None: k)
    rows: Callable[[int, dict], int] | None = None

    @property
    def needs_byzantine_data(self) -> bool:
        return "byzantine" in self.context

    def output_rows(self, k: int, params: dict[str, Any]) -> int:
        """Rows this rule returns from ``k`` input rows with the resolved ``params`` (a pre-aggregator's declaration)."""
        return k if self.rows is None else int(self.rows(k, params))

    def resolve(self, given: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults overlaid with ``given``; raises ConfigError for unknown names or bad values."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            valid = ", ".join(sorted(self.params)) or "none"
            raise ConfigError(f"{self.kind} '{self.name}': unknown parameter {unknown[0]!r}; valid: {valid}")
        out = {**self.params, **given}
        for name, value in out.items():
            default = self.params[name]
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = out[name] = float(value)
            check = self.checks.get(name)
            msg = check(name, value) if check else _type_check(name, value, default)
            if msg:
                raise ConfigError(msg)
        return out

    def __call__(self, first: Any, params: dict[str, Any], ctx: RoundContext) -> Any:
        """Apply the rule: ``fn(first, **context names it takes, **params)``."""
        return self.fn(first, **{name: getattr(ctx, name) for name in self.context}, **params)

    def describe(self) -> str:
        ps = ", ".join(
            f"{p}={v!r}" + (f" ({self.symbols[p]})" if p in self.symbols else "") for p, v in self.params.items()
        )
        text = f"{self.name}({ps})" if ps else self.name
        return text + (f" [alias: {', '.join(self.aliases)}]" if self.aliases else "")


def _type_check(name: str, value: Any, default: Any) -> str | None:
    if default is None or value is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"{name}: must be true or false, got {_shown(value)}"
    if isinstance(default, (int, float)):
        return None if _is_number(value) else f"{name}: must be a finite number, got {_shown(value)}"
    if isinstance(default, str):
        return None if isinstance(value, str) else f"{name}: must be a string, got {_shown(value)}"
    return None


AGGREGATORS: dict[str, Rule] = {}
PRE_AGGREGATORS: dict[str, Rule] = {}
ATTACKS: dict[str, Rule] = {}
#: kind -> alias -> canonical name.  A rule has one canonical name (the paper's abbreviation where
#: it has one: ``cm``, ``tm``, ``rfa``, ``cc``); it is what a run's config, key, results and tables
#: hold.  Aliases (``median``, ``trimmed_mean``, ``geometric_median``, ``centered_clip``,
#: ``multi_krum``: the names of the Python functions) are accepted wherever a name is read
#: (Python, CLI, profiles) and replaced by the canonical name on validation.
ALIASES: dict[str, dict[str, str]] = {"aggregator": {}, "pre_aggregator": {}, "attack": {}}

_TABLES = {"aggregator": AGGREGATORS, "pre_aggregator": PRE_AGGREGATORS, "attack": ATTACKS}


def _register(kind: str, name: str | None, defaults: dict | None, replace: bool = False, **extra) -> Callable:
    context_names = ATTACK_CONTEXT if kind == "attack" else AGGREGATOR_CONTEXT

    def deco(fn: Callable) -> Callable:
        rule_name = name or fn.__name__
        aliases = tuple(extra.pop("aliases", None) or ())
        for taken in (rule_name, *aliases):
            if (taken in _TABLES[kind] or taken in ALIASES[kind]) and not replace:
                raise ConfigError(f"{kind} {taken!r} is already registered; "
                                 f"pass replace=True to register another rule under that name")
        sig = inspect.signature(fn)
        names = list(sig.parameters)
        if not names:
            raise TypeError(f"{kind} {rule_name!r}: the function must take the stacked tensor as first argument")
        params: dict[str, Any] = {}
        context: list[str] = []
        for pname in names[1:]:
            p = sig.parameters[pname]
            if pname in context_names:
                context.append(pname)
            elif defaults and pname in defaults:
                params[pname] = defaults[pname]
            elif p.default is not inspect.Parameter.empty:
                params[pname] = p.default
            elif p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            elif kind != "attack" and pname in _RETIRED:
                raise TypeError(f"{kind} {rule_name!r}: parameter {pname!r} is not a context name: "
                                f"{_RETIRED[pname]}")
            else:
                raise TypeError(
                    f"{kind} {rule_name!r}: parameter {pname!r} is neither a context name "
                    f"({', '.join(sorted(context_names))}) nor has a default"
                )
        clip = extra.get("clip_radius")
        if clip is not None and clip not in params:
            raise TypeError(f"{kind} {rule_name!r}: clip_radius {clip!r} is not one of its parameters "
                            f"({', '.join(params) or 'none'})")
        if extra.get("non_finite_fill", "mean") not in ("mean", "center"):
            raise TypeError(f"{kind} {rule_name!r}: non_finite_fill must be 'mean' or 'center', "
                            f"got {extra['non_finite_fill']!r}")
        doc = inspect.getdoc(fn) or ""
        rule = Rule(
            name=rule_name,
            fn=fn,
            kind=kind,
            params=params,
            context=tuple(context),
            description=extra.pop("description", None) or (doc.splitlines()[0] if doc else ""),
            aliases=aliases,
            **extra,
        )
        _TABLES[kind][rule_name] = rule
        ALIASES[kind].pop(rule_name, None)
        ALIASES[kind].update({a: rule_name for a in aliases})
        return fn

    return deco


def register_aggregator(
    name: str | None = None,
    *,
    defaults: dict | None = None,
    checks: dict | None = None,
    requires: Callable[[int, int], str | None] | None = None,
    description: str | None = None,
    symbols: dict | None = None,
    replace: bool = False,
    aliases: tuple[str, ...] = (),
    clip_radius: str | None = None,
    non_finite_fill: str = "mean",
) -> Callable:
    """Decorator: register ``fn(x, ...) -> (d,)`` as an aggregator called ``name``.

    ``requires(n_inputs, f)`` returns an error message when the rule cannot run
    with ``n_inputs`` vectors guarding against ``f``; ``aliases`` are other accepted
    spellings (see :data:`ALIASES`); ``replace=True`` allows taking a name already registered.

    What the rule reports and how it meets untrusted rows (:mod:`byzlab.core.chain`):
    ``clip_radius`` names its parameter that is a clip radius around ``center`` (CC's
    ``"tau"``), which turns on the ``clip_fraction`` diagnostic; ``non_finite_fill``
    (``"mean"`` or ``"center"``) is what replaces a non-finite reply row before it runs."""
    return _register("aggregator", name, defaults, replace, checks=checks or {}, requires=requires,
                     description=description, symbols=symbols or {}, aliases=aliases,
                     clip_radius=clip_radius, non_finite_fill=non_finite_fill)


def register_pre_aggregator(
    name: str | None = None,
    *,
    defaults: dict | None = None,
    checks: dict | None = None,
    description: str | None = None,
    symbols: dict | None = None,
    replace: bool = False,
    rows: Callable[[int, dict], int] | None = None,
    non_finite_fill: str = "mean",
) -> Callable:
    """Decorator: register ``fn(x, ...) -> (k', d)`` as a pre-aggregator (composable with any aggregator).

    ``rows(k, params)`` declares k', the rows it returns from k rows with its resolved
    parameters (default: k), which the config's validation passes on to the aggregator's
    ``requires``; ``non_finite_fill`` as for :func:`register_aggregator`."""
    return _register("pre_aggregator", name, defaults, replace, checks=checks or {},
                     description=description, symbols=symbols or {}, rows=rows, non_finite_fill=non_finite_fill)


def register_attack(
    name: str | None = None,
    *,
    defaults: dict | None = None,
    checks: dict | None = None,
    flip_labels: bool = False,
    description: str | None = None,
    symbols: dict | None = None,
    replace: bool = False,
) -> Callable:
    """Decorator: register ``fn(benign, ...) -> (d,) | (k_m, d)`` as an attack called ``name``."""
    return _register("attack", name, defaults, replace, checks=checks or {}, flip_labels=flip_labels,
                     description=description, symbols=symbols or {})


def canonical(kind: str, name: str) -> str:
    """The canonical name of a rule given by any of its spellings (unknown names are returned as is)."""
    return ALIASES[kind].get(name, name) if isinstance(name, str) else name


def lookup(kind: str, name: str) -> Rule:
    """The registered rule (by its name or an alias), or a one-line ConfigError listing the valid names."""
    table = _TABLES[kind]
    name = canonical(kind, name)
    if name not in table:
        valid = ", ".join(sorted(table))
        raise ConfigError(f"{kind}: unknown {name!r}; choose one of: {valid}")
    return table[name]


_LOADED_PLUGINS: set[str] = set()


def plugin_path(module: str, base: str | os.PathLike | None = None) -> str:
    """A plug-in as it is recorded and loaded: a file (``.py``, or any name with a path separator) as
    its absolute path, relative paths taken from ``base`` (default: the working directory); a
    dotted module name unchanged."""
    if not (module.endswith(".py") or os.path.sep in module):
        return module
    return os.path.realpath(os.path.join(base or os.getcwd(), os.path.expanduser(module)))


def load_plugin(module: str) -> None:
    """Import ``module`` (a dotted name or a path to a ``.py`` file) so its decorators register rules.

    Loading the same file or module again does nothing (sweep workers and the
    dashboard load the plug-ins named in a config more than once).
    """
    import hashlib
    import importlib
    import importlib.util
    import sys

    ident = plugin_path(module)
    is_path = os.path.isabs(ident)  # a dotted module name never is
    if ident in _LOADED_PLUGINS:
        return
    try:
        if is_path:
            if not os.path.exists(ident):
                raise ConfigError(f"plugin: file not found: {module}")
            stem = os.path.splitext(os.path.basename(ident))[0]
            modname = f"byzlab_plugin_{stem}_{hashlib.sha1(ident.encode()).hexdigest()[:8]}"
            spec = importlib.util.spec_from_file_location(modname, ident)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[modname] = mod
            spec.loader.exec_module(mod)
        else:
            importlib.import_module(module)
    except ConfigError:
        raise
    except ImportError as e:
        raise ConfigError(f"plugin: cannot import {module!r}: {e}") from None
    _LOADED_PLUGINS.add(ident)
