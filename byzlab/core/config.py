"""Run configuration: every knob of Algorithm 1 with the paper's defaults (Section VI), validated up front.

Paper symbols: ``k`` (k, clients), ``k_m`` (k_m, Byzantine clients), ``b``
(batch size), ``beta`` (β, worker momentum), ``lr`` (η), ``tau`` (τ, CC
radius), ``z`` and ``lam`` (z, λ of ROP), ``eps`` (ε of IPM).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ConfigError
from .registry import AGGREGATORS, ATTACKS, PRE_AGGREGATORS, check_policy, lookup

NO_ATTACK = "none"
#: the paper's knobs, rule parameters with a name of their own everywhere (CLI options, table
#: columns, dashboard sliders, labels): name -> what it is
PAPER_KNOBS = {"z": "ROP perturbation norm z / ALIE z", "lam": "ROP λ", "tau": "CC radius τ", "eps": "IPM ε"}
#: gradient engines (:mod:`byzlab.core.engines`); ``auto`` picks the fastest for the device and model
ENGINES = ("auto", "loop", "vmap", "fused")

#: fields that do not change the numbers of a run beyond floating-point rounding (left out of its key)
NON_IDENTITY_FIELDS = ("data_root", "download", "device", "engine", "threads", "progress_label")
#: fields added after results stores existed: left out of a run's key while at their default,
#: so the keys (and stored results) of runs that do not use them stay valid
#: (``non_finite``: the screening of :mod:`byzlab.core.chain` leaves a matrix whose rows are all finite unchanged)
LATER_FIELDS = {"root_size": 100, "non_finite": "drop"}


def _field(default: Any, help: str, **cli: Any) -> Any:
    """A :class:`RunConfig` field with its command-line help (``byzlab run --NAME``, :mod:`byzlab.running.options`)."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class Schedule:
    """How many rounds a run takes and when it evaluates (:meth:`RunConfig.schedule`).

    An epoch is ⌊(N/k)/b⌋ rounds (each client walks through its N/k samples in batches of
    b, Algorithm 1); the run takes ``epochs`` of them, capped by ``max_rounds``, and
    evaluates every ``eval_every`` rounds (default: once an epoch) and after its last round.
    """

    rounds_per_epoch: int
    total_rounds: int
    eval_every: int

    @property
    def n_evaluations(self) -> int:
        """Evaluations the run records (its history's length)."""
        return -(-self.total_rounds // self.eval_every)


@dataclass(frozen=True)
class RunConfig:
    """One federated training run (Algorithm 1).

    The defaults are the paper's headline experiment (Section VI): ROP (z = 1, λ = 0.9)
    against Centered Clipping (τ = 1) with worker momentum β = 0.9, k = 25 clients of
    which k_m = 5 Byzantine, on the embedded ``mnist5k``.  So a run is attacked unless
    it says otherwise: ``RunConfig(aggregator="tm")`` is ROP against TM, and
    ``attack="none"`` is the clean baseline.  The command line (``byzlab run``) has the
    same defaults (its options are generated from these fields and their help, by
    :mod:`byzlab.running.options`); the live dashboard
    starts from them too, except β = 0 (``byzlab.dashboard.DEFAULT_BETA``: the
    attacks show within a minute there).

    Attributes
    ----------
    dataset, model, norm
        Data set (``byzlab list``), model (``None`` → the data set's default:
        cnn for MNIST-like, resnet20 for CIFAR-10, resnet9 for CIFAR-100, mlp for
        digits) and normalisation layer of the ResNets (``bn`` or ``gn``).
    partition, alpha
        ``iid`` or ``dirichlet`` with concentration α (Fig. 2; paper: α = 1).
    k, k_m
        Clients and Byzantine clients (paper: 25 and 5).  With ``attack="none"``
        the run has no Byzantine clients (the paper's baseline, γ = 0).
    b, epochs, lr, lr_decay, lr_decay_at, weight_decay
        Batch size b = 32, 100 epochs of ⌊(N/k)/b⌋ rounds, η = 0.1 multiplied by
        0.1 once 75 % of the epochs are done; weight decay (0 in the paper) is
        added to each benign gradient.
    beta
        Worker momentum β ∈ [0, 1): m_{i,t} = (1 − β) g_{i,t} + β m_{i,t−1}.
    aggregator, aggregator_params, pre_aggregators, pre_aggregator_params, agg_f
        Server rule and its parameters (e.g. ``{"tau": 1.0}`` for ``cc``);
        pre-aggregators applied in order (``bucketing``, ``nnm``) with
        ``{name: {param: value}}``; ``agg_f`` the number of Byzantine clients the
        server assumes (None → k_m).
    attack, attack_params
        Attack name (``none`` for the baseline) and its parameters (e.g.
        ``{"z": 1.0, "lam": 0.9}`` for ``rop``).
    eval_every, diagnostics
        Evaluation cadence in rounds (None → once per epoch) and whether the
        per-round diagnostics (Tables II–III, CC clip fraction, ‖m̃_t‖) are computed.
    seed, device, engine, precision, threads
        Seed of everything random; ``auto``/``cpu``/``cuda``; how client gradients
        are computed (``auto``: ``vmap`` on CUDA; on CPU ``fused`` where it is
        faster (cnn, mlp), else ``loop``); ``fp32``, ``tf32`` or ``bf16`` (autocast
        of the forward pass); the torch threads a run computes with (default 1, as
        the sweep's runs: ``byzlab run``, :func:`byzlab.run` and the sweep apply it
        while the run advances, so the same config gives the same numbers at the
        command line and in a sweep).  Engine, device and threads change a run's
        numbers only by floating-point rounding (every draw comes from one CPU
        generator, :mod:`byzlab.core.draws`), so they are not part of its key;
        a result records them (:mod:`byzlab.core.provenance`).
    max_rounds
        Stop after this many rounds (quick looks; None → all epochs).
    root_size
        Samples of the server's root data set, drawn at random (seeded) from the
        training set, for rules that take the server's own update
        (``server_update``, e.g. FLTrust); unused otherwise.
    non_finite
        What the server does with a reply row that is not finite (NaN, ±inf, or a
        squared norm that overflows): ``drop`` (default) screens it out as a Byzantine
        reply before the rules run, replaced by the first rule's declared fill and
        counted in the ``non_finite`` diagnostic; ``propagate`` is the paper's plain
        behaviour (the rules see it).  See :mod:`byzlab.core.chain`.
    data_root, download
        Where torchvision data sets live and whether to download them.
    """

    dataset: str = _field("mnist5k", "data set (byzlab list)")
    model: str | None = _field(None, "model (default: the data set's)")
    norm: str = _field("bn", "normalisation of the ResNets: bn or gn")
    partition: str = _field("iid", "iid or dirichlet")
    alpha: float = _field(1.0, "Dirichlet concentration α")
    k: int = _field(25, "clients k")
    k_m: int = _field(5, "Byzantine clients k_m")
    b: int = _field(32, "batch size b", flags=("--b", "--batch-size"))
    epochs: int = _field(100, "epochs")
    lr: float = _field(0.1, "learning rate η")
    lr_decay: float = _field(0.1, "factor of η once lr_decay_at of the epochs are done, in (0, 1]")
    lr_decay_at: float = _field(0.75, "fraction of the epochs after which η decays, in [0, 1]")
    weight_decay: float = _field(0.0, "weight decay added to each benign gradient")
    beta: float = _field(0.9, "worker momentum β in [0, 1)")
    aggregator: str = _field("cc", "server rule")
    aggregator_params: dict = field(default_factory=dict)
    pre_aggregators: tuple = field(default=(), metadata={"help": "pre-aggregator; repeatable",
                                                         "flags": ("--pre",), "repeat": True})
    pre_aggregator_params: dict = field(default_factory=dict)
    agg_f: int | None = _field(None, "Byzantine clients the server assumes (default: k_m)")
    attack: str = _field("rop", "attack")
    attack_params: dict = field(default_factory=dict)
    eval_every: int | None = _field(None, "evaluate every N rounds (default: once an epoch)")
    diagnostics: bool = _field(True, "per-round diagnostics (Tables II-III, clip fraction, ‖m̃_t‖)",
                               off="no per-round diagnostics")
    seed: int = _field(0, "seed of everything random")
    device: str = _field("auto", "auto, cpu, cuda[:N]")
    engine: str = _field("auto", "auto, loop, vmap, fused")
    precision: str = _field("fp32", "fp32, tf32, bf16")
    threads: int = _field(1, "torch threads the run computes with (CPU)")
    max_rounds: int | None = _field(None, "stop after N rounds")
    root_size: int = _field(100, "samples of the server's root data (rules taking server_update)")
    non_finite: str = _field("drop", "non-finite reply rows: drop (screened out as Byzantine replies) or "
                                     "propagate (the paper's plain behaviour)")
    data_root: str | None = _field(None, "folder of torchvision data sets")
    download: bool = _field(True, "download torchvision data sets that are missing",
                             off="never download a data set")
    progress_label: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def make(cls, config: "RunConfig | dict | None" = None, **kw: Any) -> "RunConfig":
        """Build a config from a config/dict plus keyword overrides.

        Keywords that are not fields are routed to the rule that owns them:
        ``tau=0.1`` → ``aggregator_params``, ``z=10, lam=0.5`` →
        ``attack_params`` (for the chosen aggregator and attack).
        """
        base = config.to_dict() if isinstance(config, RunConfig) else dict(config or {})
        # switching rule drops the previous rule's parameters unless new ones are given
        for rule, params in (("aggregator", "aggregator_params"), ("attack", "attack_params"),
                             ("pre_aggregators", "pre_aggregator_params")):
            if rule in kw and params not in kw and _norm_rule(kw[rule]) != _norm_rule(base.get(rule)):
                base.pop(params, None)
        base.update(kw)
        names = {f.name for f in fields(cls)}
        extra = {key: base.pop(key) for key in list(base) if key not in names}
        if extra:
            agg = lookup("aggregator", base.get("aggregator", cls.aggregator))
            att_name = base.get("attack", cls.attack)
            att = lookup("attack", att_name) if att_name != NO_ATTACK else None
            ap = dict(base.get("aggregator_params") or {})
            tp = dict(base.get("attack_params") or {})
            for key, v in extra.items():
                if key in agg.params:
                    ap[key] = v
                elif att is not None and key in att.params:
                    tp[key] = v
                else:
                    raise ConfigError(
                        f"{key}: not a config field nor a parameter of aggregator {agg.name!r} "
                        f"({', '.join(agg.params) or 'none'}) or attack {att_name!r} "
                        f"({', '.join(att.params) if att else 'none'})")
            base["aggregator_params"], base["attack_params"] = ap, tp
        if "pre_aggregators" in base and isinstance(base["pre_aggregators"], (list, str)):
            pa = base["pre_aggregators"]
            base["pre_aggregators"] = tuple([pa] if isinstance(pa, str) else pa)
        return cls(**base).validated()

    def replace(self, **kw: Any) -> "RunConfig":
        return RunConfig.make(self, **kw)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["pre_aggregators"] = list(self.pre_aggregators)
        return d

    @classmethod
    def from_dict(cls, d: dict, *, strict: bool = True) -> "RunConfig":
        """Rebuild a config from :meth:`to_dict`.  ``strict=False`` accepts a stored, already
        resolved config whose rules are not registered in this process (e.g. a plugin's)."""
        try:
            return cls.make(d)
        except ConfigError:
            if strict:
                raise
            d = dict(d)
            d["pre_aggregators"] = tuple(d.get("pre_aggregators") or ())
            return cls(**d)

    # ------------------------------------------------------------------ derived
    @property
    def n_byzantine(self) -> int:
        """Byzantine clients actually present (0 for the ``none`` baseline)."""
        return 0 if self.attack == NO_ATTACK else self.k_m

    @property
    def f(self) -> int:
        """Byzantine clients the server guards against (``agg_f`` or the actual count)."""
        return self.n_byzantine if self.agg_f is None else self.agg_f

    @property
    def byzantine_train(self) -> bool:
        """Whether the Byzantine clients compute gradients on their own data (the attack takes ``byzantine``)."""
        return self.attack != NO_ATTACK and ATTACKS[self.attack].needs_byzantine_data

    @property
    def server_trains(self) -> bool:
        """Whether the server computes its own update on its root data (a rule takes ``server_update``)."""
        rules = [AGGREGATORS[self.aggregator], *(PRE_AGGREGATORS[p] for p in self.pre_aggregators)]
        return any("server_update" in r.context for r in rules)

    @property
    def n_compute(self) -> int:
        """Rows of a round's gradient matrix: the k − k_m benign clients, then the k_m Byzantine
        clients when they train on their own data, then the server when it trains on its root data."""
        return self.k - self.n_byzantine + (self.n_byzantine if self.byzantine_train else 0) + int(self.server_trains)

    def schedule(self, n_train: int | None = None) -> "Schedule":
        """The run's round arithmetic (the one place it is computed; see :class:`Schedule`).

        ``n_train`` is the size of the training set the run sees (default: the data set's
        :class:`~byzlab.core.data.DatasetSpec`); the simulator passes the loaded data's.
        """
        if n_train is None:
            from .data import DATASET_SPECS
            n_train = DATASET_SPECS[self.dataset].n_train
        per_epoch = max(1, (n_train // self.k) // self.b)
        total = self.epochs * per_epoch
        if self.max_rounds is not None:
            total = min(total, self.max_rounds)
        return Schedule(per_epoch, total, self.eval_every or per_epoch)

    def identity(self) -> dict:
        """The resolved config minus fields that do not change the numbers."""
        d = self.to_dict()
        for name in NON_IDENTITY_FIELDS:
            d.pop(name, None)
        for name, default in LATER_FIELDS.items():
            if d.get(name) == default:
                d.pop(name)
        return d

    def key(self) -> str:
        """Stable 16-hex id of the run, derived from its full resolved config."""
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def label(self) -> str:
        """Short human label, e.g. ``rop(z=1,lam=0.9) vs cc(tau=1) β=0.9`` or ``no attack, tm β=0``:
        the paper's knobs (τ, z, λ, ε) and any parameter off its default (all of them for a rule
        not registered in this process)."""
        def fmt(table: dict, name: str, params: dict) -> str:
            rule = table.get(name)
            shown = [f"{k}={_short(v)}" for k, v in params.items()
                     if v is not None and (rule is None or k in PAPER_KNOBS or v != rule.params.get(k))]
            return f"{name}({','.join(shown)})" if shown else name
        agg = "".join(f"{p}+" for p in self.pre_aggregators) + fmt(AGGREGATORS, self.aggregator,
                                                                     self.aggregator_params)
        if self.attack == NO_ATTACK:
            return f"no attack, {agg} β={_short(self.beta)}"
        return f"{fmt(ATTACKS, self.attack, self.attack_params)} vs {agg} β={_short(self.beta)}"

    # ------------------------------------------------------------------ validation
    def validated(self) -> "RunConfig":
        """Check every field; return the config with defaults resolved.  Raises ConfigError (one line)."""
        from .data import DATASETS
        from .models import MODELS
        from .partition import PARTITIONS

        _choice("dataset", self.dataset, DATASETS)
        if self.model is not None:
            _choice("model", self.model, MODELS)
        _choice("norm", self.norm, ("bn", "gn"))
        _choice("partition", self.partition, PARTITIONS)
        _num("alpha", self.alpha, lo=0, lo_open=True)
        _int("k", self.k, lo=1)
        _int("k_m", self.k_m, lo=0)
        if not self.k_m < self.k:
            raise ConfigError(f"k_m: must satisfy 0 <= k_m < k (k={self.k}), got {self.k_m}")
        _int("b", self.b, lo=1)
        _int("epochs", self.epochs, lo=1)
        _num("lr", self.lr, lo=0, lo_open=True)
        _num("lr_decay", self.lr_decay, lo=0, hi=1, lo_open=True)
        _num("lr_decay_at", self.lr_decay_at, lo=0, hi=1)
        _num("weight_decay", self.weight_decay, lo=0)
        _num("beta", self.beta, lo=0, hi=1, hi_open=True)
        if self.agg_f is not None:
            _int("agg_f", self.agg_f, lo=0)
        if self.eval_every is not None:
            _int("eval_every", self.eval_every, lo=1)
        if self.max_rounds is not None:
            _int("max_rounds", self.max_rounds, lo=1)
        _int("root_size", self.root_size, lo=1)
        _int("seed", self.seed, lo=0)
        _int("threads", self.threads, lo=1)
        if not isinstance(self.diagnostics, bool):
            raise ConfigError(f"diagnostics: must be true or false, got {self.diagnostics!r}")
        if not isinstance(self.download, bool):
            raise ConfigError(f"download: must be true or false, got {self.download!r}")
        check_policy(self.non_finite)
        _choice("engine", self.engine, ENGINES)
        _choice("precision", self.precision, ("fp32", "tf32", "bf16"))
        _check_device(self.device)

        # rules and their parameters
        agg = lookup("aggregator", self.aggregator)
        agg_params = agg.resolve(self.aggregator_params)
        for name in self.pre_aggregators:
            lookup("pre_aggregator", name)
        unknown_pre = sorted(set(self.pre_aggregator_params) - set(self.pre_aggregators))
        if unknown_pre:
            raise ConfigError(f"pre_aggregator_params: {unknown_pre[0]!r} is not in pre_aggregators "
                              f"({', '.join(self.pre_aggregators) or 'none'})")
        pre_params = {n: PRE_AGGREGATORS[n].resolve(self.pre_aggregator_params.get(n)) for n in self.pre_aggregators}
        if self.attack == NO_ATTACK:
            if self.attack_params:
                raise ConfigError("attack_params: attack 'none' takes no parameters")
            att_params: dict = {}
        else:
            att_params = lookup("attack", self.attack).resolve(self.attack_params)

        # what the aggregator can tolerate, given the number of vectors it receives
        n_inputs = self.k
        for name in self.pre_aggregators:  # each pre-aggregator declares the rows it returns
            n_inputs = PRE_AGGREGATORS[name].output_rows(n_inputs, pre_params[name])
        f = self.n_byzantine if self.agg_f is None else self.agg_f
        if f >= self.k:
            raise ConfigError(f"agg_f: must be < k (k={self.k}), got {f}")
        if agg.requires is not None:
            msg = agg.requires(n_inputs, f)
            if msg:
                raise ConfigError(msg)

        return dataclasses.replace(
            self,
            aggregator=agg.name,  # the canonical name: an alias gives the same run (and key)
            attack=self.attack if self.attack == NO_ATTACK else lookup("attack", self.attack).name,
            aggregator_params=agg_params,
            attack_params=att_params,
            pre_aggregators=tuple(self.pre_aggregators),
            pre_aggregator_params=pre_params,
        )


# ---------------------------------------------------------------------- helpers
def _norm_rule(v: Any) -> Any:
    return tuple(v) if isinstance(v, (list, tuple)) else v


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _choice(name: str, value: Any, valid) -> None:
    if value not in valid:
        raise ConfigError(f"{name}: unknown {value!r}; choose one of: {', '.join(sorted(valid))}")


def _int(name: str, value: Any, lo: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or (lo is not None and value < lo):
        raise ConfigError(f"{name}: must be an integer >= {lo}, got {value!r}")


def _num(name, value, lo=None, hi=None, lo_open=False, hi_open=False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        rng = f"{lb}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{rb}"
        raise ConfigError(f"{name}: must be in {rng}, got {value!r}")


def _check_device(device: str) -> None:
    import torch

    if device in ("auto", "cpu"):
        return
    if isinstance(device, str) and device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {device!r} asked for but CUDA is not available here; use 'auto' or 'cpu'")
        return
    raise ConfigError(f"device: must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


def resolve_device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def available() -> dict[str, dict[str, str]]:
    """Everything `byzlab list` shows: name -> description (with parameters) per kind."""
    from .data import DATASETS
    from .models import MODELS

    return {
        "datasets": dict(DATASETS),
        "models": dict(MODELS),
        "partitions": {"iid": "equal random shards", "dirichlet": "per-class Dirichlet(alpha) proportions (Fig. 2)"},
        "aggregators": {n: f"{r.describe()} — {r.description}" for n, r in sorted(AGGREGATORS.items())},
        "pre_aggregators": {n: f"{r.describe()} — {r.description}" for n, r in sorted(PRE_AGGREGATORS.items())},
        "attacks": {NO_ATTACK: "no Byzantine clients (baseline, k_m = 0)",
                    **{n: f"{r.describe()} — {r.description}" for n, r in sorted(ATTACKS.items())}},
    }
