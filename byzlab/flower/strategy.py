"""The Flower strategy (:class:`ByzlabStrategy`) and the attack wrapper (:class:`OmniscientAttack`)."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Strategy

from ..errors import ConfigError
from ..registry import RoundContext, load_plugin, lookup


# --------------------------------------------------------------------------- arrays <-> vectors
def _float_keys(arrays: ArrayRecord) -> list[str]:
    return [k for k, a in arrays.items() if str(a.dtype).startswith(("float", "bfloat"))]


def to_vector(arrays: ArrayRecord) -> torch.Tensor:
    """The floating-point arrays of ``arrays``, flattened and concatenated in order, as one float32 vector."""
    parts = [torch.from_numpy(arrays[k].numpy()).reshape(-1).float() for k in _float_keys(arrays)]
    return torch.cat(parts) if parts else torch.zeros(0)


def from_vector(vec: torch.Tensor, like: ArrayRecord) -> ArrayRecord:
    """An ArrayRecord shaped like ``like`` whose floating-point arrays are read from ``vec`` (the rest copied)."""
    out, off = {}, 0
    floats = set(_float_keys(like))
    for k, a in like.items():
        arr = a.numpy()
        if k in floats:
            out[k] = vec[off: off + arr.size].reshape(arr.shape).to(torch.from_numpy(arr).dtype)
            off += arr.size
        else:
            out[k] = torch.from_numpy(arr.copy())
    return ArrayRecord(torch_state_dict=out)


def _updates(theta: torch.Tensor, replies: list[Message], key: str, lr: float) -> torch.Tensor:
    """(k, d) matrix of the updates u_i = (θ − θ_i)/η, one row per reply."""
    if not replies:
        return theta.new_empty(0, theta.numel())
    return torch.stack([(theta - to_vector(m.content[key])) / lr for m in replies])


def _lr_of(messages: list[Message], key: str, default: float) -> float:
    for m in messages:
        cfg = m.content.get(key)
        if cfg is not None and "lr" in cfg:
            return float(cfg["lr"])
    return default


def _cosines(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(x, ref[None, :], dim=1, eps=1e-12)


# --------------------------------------------------------------------------- the strategy
class ByzlabStrategy(FedAvg):
    """A Flower strategy aggregating client updates with a byzlab rule (see the module docstring).

    ``aggregator`` and ``pre_aggregators`` are registered names (``byzlab list``;
    ``plugins`` are modules or ``.py`` files registering more); ``params`` holds the
    tunable parameters of the aggregator, ``pre_params`` those of each pre-aggregator
    by name; ``f`` is what the rules guard against (RoundContext ``f``); ``lr`` is η
    sent to the clients, ``server_lr`` η_s (default η); ``seed`` seeds the rules'
    generator.  Other keywords go to ``FedAvg`` (``fraction_train``, ``min_available_nodes``, …).
    """

    def __init__(self, aggregator: str = "cc", *, params: dict | None = None, pre_aggregators: Iterable[str] = (),
                 pre_params: dict[str, dict] | None = None, f: int = 0, lr: float = 0.1,
                 server_lr: float | None = None, seed: int = 0, plugins: Iterable[str] = (), **kwargs: Any):
        super().__init__(**kwargs)
        for p in plugins:
            load_plugin(p)
        self.aggregator = lookup("aggregator", aggregator)
        self.params = self.aggregator.resolve(params)
        self.pre = [lookup("pre_aggregator", n) for n in pre_aggregators]
        for rule in (self.aggregator, *self.pre):
            if "server_update" in rule.context:
                raise ConfigError(f"aggregator: {rule.name!r} needs the server's own update (server_update), which "
                                  "this strategy does not compute; allowed: rules without it")
        unknown = sorted(set(pre_params or {}) - {r.name for r in self.pre})
        if unknown:
            raise ConfigError(f"pre_params: {unknown[0]!r} is not among pre_aggregators; "
                              f"allowed: {', '.join(r.name for r in self.pre) or 'none'}")
        self.pre_params = [r.resolve((pre_params or {}).get(r.name)) for r in self.pre]
        if not (isinstance(f, int) and f >= 0):
            raise ConfigError(f"f: must be an integer >= 0, got {f!r}")
        for name, v in (("lr", lr), ("server_lr", lr if server_lr is None else server_lr)):
            if not (isinstance(v, (int, float)) and v > 0):
                raise ConfigError(f"{name}: must be > 0, got {v!r}")
        self.f, self.lr = f, float(lr)
        self.server_lr = float(lr if server_lr is None else server_lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.rule_state: dict[str, dict] = {}  # RoundContext.state of each rule, by role (as the simulator)
        self.prev_aggregate: torch.Tensor | None = None  # m̃_{t−1}
        self.byzantine_node_ids: set[int] = set()  # set by OmniscientAttack, for the diagnostics only
        self._theta: ArrayRecord | None = None

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self._theta = arrays
        config["lr"] = self.lr
        return super().configure_train(server_round, arrays, config, grid)

    def _call(self, role: str, rule, first: torch.Tensor, params: dict, ctx: RoundContext) -> torch.Tensor:
        if "state" in rule.context:
            ctx = dataclasses.replace(ctx, state=self.rule_state.setdefault(role, {}))
        return rule(first, params, ctx)

    def aggregate(self, server_round: int, x: torch.Tensor) -> torch.Tensor:
        """m̃_t = AGG(pre-aggregators(x)) for the ``(k, d)`` updates ``x`` of round ``server_round``."""
        k, d = x.shape
        msg = self.aggregator.requires(k, self.f) if self.aggregator.requires else None
        if msg:
            raise ConfigError(msg.replace("k_m", "f"))
        prev = self.prev_aggregate
        ctx = RoundContext(t=server_round, k=k, k_m=self.f, f=self.f, lr=self.server_lr, prev_aggregate=prev,
                           center=torch.zeros(d) if prev is None else prev, generator=self.generator)
        inputs = x
        for i, (rule, params) in enumerate(zip(self.pre, self.pre_params)):
            inputs = self._call(f"pre{i}", rule, inputs, params, ctx)
        return self._call("aggregator", self.aggregator, inputs, self.params, ctx)

    def diagnostics(self, x: torch.Tensor, byz: torch.Tensor, aggregate: torch.Tensor) -> dict[str, float]:
        """Clip fraction, cosines to m̃_{t−1} (benign / Byzantine rows), ‖m̃_t‖ (NaN-free: absent keys)."""
        out = {"agg-norm": float(aggregate.norm()), "num-byzantine": int(byz.sum())}
        prev = self.prev_aggregate
        if "tau" in self.params and "center" in self.aggregator.context and not self.pre:
            centre = torch.zeros_like(aggregate) if prev is None else prev
            out["clip-fraction"] = float(((x - centre).norm(dim=1) > self.params["tau"]).float().mean())
        if prev is not None and float(prev.norm()) > 0:
            cos = _cosines(x, prev)
            if (~byz).any():
                out["cos-benign"] = float(cos[~byz].mean())
            if byz.any():
                out["cos-byzantine"] = float(cos[byz].mean())
        return out

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        valid, _ = self._check_and_log_replies(list(replies), is_train=True)
        if not valid or self._theta is None:
            return None, None
        valid.sort(key=lambda m: m.metadata.src_node_id)  # a fixed row order
        theta = to_vector(self._theta)
        x = _updates(theta, valid, self.arrayrecord_key, self.lr)
        aggregate = self.aggregate(server_round, x)
        byz = torch.tensor([m.metadata.src_node_id in self.byzantine_node_ids for m in valid], dtype=torch.bool)
        diag = self.diagnostics(x, byz, aggregate)
        self.prev_aggregate = aggregate
        metrics = self.train_metrics_aggr_fn([m.content for m in valid], self.weighted_by_key)
        metrics = MetricRecord({**dict(metrics or {}), **diag})
        return from_vector(theta - self.server_lr * aggregate, self._theta), metrics


# --------------------------------------------------------------------------- the attack (research tool)
class OmniscientAttack(Strategy):
    """Research tool: replace the train replies of chosen nodes with a byzlab attack (omniscient, server side).

    Wraps any message-API ``strategy``.  ``node_ids`` (exact Flower node ids) or
    ``num_byzantine`` (the largest ids among the connected nodes) choose the
    Byzantine nodes; their replies are replaced by θ_{t−1} − η m_byz, where m_byz is
    ``attack`` (with ``params``) applied to the benign replies' updates, given
    m̃_{t−1} read from the global model's last step and the attacked nodes' own
    honest updates (``byzantine``).  ``mask`` is needed by ``rop_s``.
    """

    def __init__(self, strategy: Strategy, attack: str = "rop", *, node_ids: Iterable[int] | None = None,
                 num_byzantine: int | None = None, params: dict | None = None, lr: float = 0.1,
                 server_lr: float | None = None, mask: torch.Tensor | None = None, seed: int = 0,
                 arrayrecord_key: str = "arrays", configrecord_key: str = "config"):
        self.strategy = strategy
        self.attack = lookup("attack", attack)
        self.params = self.attack.resolve(params)
        if (node_ids is None) == (num_byzantine is None):
            raise ConfigError("node_ids: give exactly one of node_ids (Flower node ids) or num_byzantine (a count)")
        if num_byzantine is not None and not (isinstance(num_byzantine, int) and num_byzantine >= 1):
            raise ConfigError(f"num_byzantine: must be an integer >= 1, got {num_byzantine!r}")
        if self.attack.flip_labels:
            raise ConfigError(f"attack: {attack!r} changes the clients' training, not their replies; "
                              "allowed: attacks computed from the replies (rop, alie, ipm, bit_flip, ...)")
        if "mask" in self.attack.context and mask is None:
            raise ConfigError(f"mask: attack {attack!r} needs the layer mask (byzlab.models.sparse_mask(model))")
        self.node_ids = None if node_ids is None else sorted(int(n) for n in node_ids)
        self.num_byzantine = num_byzantine
        self.lr, self.mask = float(lr), mask
        self.server_lr = float(lr if server_lr is None else server_lr)
        self.arrayrecord_key, self.configrecord_key = arrayrecord_key, configrecord_key
        self.generator = torch.Generator().manual_seed(seed)
        self.state: dict = {}
        self.byzantine: list[int] = []
        self._theta: torch.Tensor | None = None
        self._prev_theta: torch.Tensor | None = None
        self._like: ArrayRecord | None = None

    def summary(self) -> None:
        self.strategy.summary()

    def _choose(self, grid: Grid) -> list[int]:
        nodes = sorted(int(n) for n in grid.get_node_ids())
        if self.num_byzantine is not None:
            if self.num_byzantine >= len(nodes):
                raise ConfigError(f"num_byzantine: must be < the {len(nodes)} connected nodes, got {self.num_byzantine}")
            return nodes[-self.num_byzantine:]
        missing = [n for n in self.node_ids if n not in nodes]
        if missing:
            raise ConfigError(f"node_ids: unknown node id {missing[0]}; connected: {', '.join(map(str, nodes))}")
        return self.node_ids

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.byzantine = self._choose(grid)
        if hasattr(self.strategy, "byzantine_node_ids"):
            self.strategy.byzantine_node_ids = set(self.byzantine)
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        self.lr = _lr_of(messages, self.configrecord_key, self.lr)
        self._prev_theta, self._theta, self._like = self._theta, to_vector(arrays), arrays
        return messages

    def forge(self, server_round: int, benign: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """``(k_m, d)`` Byzantine updates from the benign ``(k_b, d)`` and the attacked nodes' own updates."""
        prev = None if self._prev_theta is None else (self._prev_theta - self._theta) / self.server_lr
        d = benign.shape[1]
        ctx = RoundContext(t=server_round, k=benign.shape[0] + own.shape[0], k_m=own.shape[0], f=own.shape[0],
                           lr=self.lr, prev_aggregate=prev, center=torch.zeros(d) if prev is None else prev,
                           generator=self.generator, byzantine=own, mask=self.mask, state=self.state)
        out = self.attack(benign, self.params, ctx)
        return out.expand(own.shape[0], d) if out.dim() == 1 else out

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        replies = list(replies)
        ok = [m for m in replies if not m.has_error()]
        byz = sorted((m for m in ok if m.metadata.src_node_id in self.byzantine), key=lambda m: m.metadata.src_node_id)
        benign = sorted((m for m in ok if m.metadata.src_node_id not in self.byzantine),
                        key=lambda m: m.metadata.src_node_id)
        if byz and len(benign) >= 2:
            key = self.arrayrecord_key
            forged = self.forge(server_round, _updates(self._theta, benign, key, self.lr),
                                _updates(self._theta, byz, key, self.lr))
            swap = {}
            for m, v in zip(byz, forged):
                content = RecordDict({**dict(m.content.items()), key: from_vector(self._theta - self.lr * v, self._like)})
                swap[id(m)] = Message(content=content, metadata=m.metadata)
            replies = [swap.get(id(m), m) for m in replies]
        return self.strategy.aggregate_train(server_round, replies)

    def configure_evaluate(self, server_round, arrays, config, grid):
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round, replies):
        return self.strategy.aggregate_evaluate(server_round, replies)
