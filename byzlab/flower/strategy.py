"""The Flower strategy (:class:`ByzlabStrategy`): byzlab's rule chain on Flower replies, each reply checked."""
from __future__ import annotations

import logging
import math
import time
import warnings
from typing import Any, Callable, Iterable

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import validate_message_reply_consistency

from ..core.chain import DIAGNOSTIC_COLUMNS, RuleChain, diagnostics, row_sq_norms
from ..core.errors import ConfigError
from ..core.registry import RoundContext, load_plugin, lookup, positive

log = logging.getLogger("byzlab.flower")


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


def updates(theta: torch.Tensor, replies: list[Message], key: str, lr: float) -> torch.Tensor:
    """(k, d) matrix of the updates u_i = (θ − θ_i)/η, one row per reply."""
    if not replies:
        return theta.new_empty(0, theta.numel())
    return torch.stack([(theta - to_vector(m.content[key])) / lr for m in replies])


def malformed(message: Message, key: str, like: ArrayRecord) -> str | None:
    """Why the reply ``message`` cannot be read as a model shaped like ``like`` (None when it can).

    The reply must carry an ArrayRecord under ``key`` with the same arrays, in the same
    order, of the same shapes and dtypes, readable as such (its bytes match its shape)."""
    arrays = message.content.get(key) if message.has_content() else None
    if not isinstance(arrays, ArrayRecord):
        return f"no ArrayRecord {key!r}"
    if list(arrays.keys()) != list(like.keys()):
        return f"arrays {sorted(arrays.keys())}, expected {sorted(like.keys())}"
    for name, want in like.items():
        got = arrays[name]
        if tuple(got.shape) != tuple(want.shape) or got.dtype != want.dtype:
            return f"array {name!r} is {got.dtype}{list(got.shape)}, expected {want.dtype}{list(want.shape)}"
        try:
            got.numpy()
        except Exception as e:  # noqa: BLE001 - any unreadable payload is a malformed reply
            return f"array {name!r} is unreadable ({type(e).__name__})"
    return None


def sender(m: Message) -> int:
    """The node id a reply comes from."""
    return m.metadata.src_node_id


def wait_for_nodes(grid: Grid, need: int, timeout: float) -> list[int]:
    """The connected node ids once at least ``need`` are connected; a one-line ConfigError after ``timeout`` s."""
    end = time.monotonic() + timeout
    while True:
        nodes = sorted(int(n) for n in grid.get_node_ids())
        if len(nodes) >= need:
            return nodes
        left = end - time.monotonic()
        if left <= 0:
            shown = ", ".join(map(str, nodes[:20])) + (", ..." if len(nodes) > 20 else "")
            raise ConfigError(f"min_available_nodes: waited {timeout:g} s for {need} nodes, {len(nodes)} connected "
                              f"({shown or 'none'}); allowed: at most the nodes that connect")
        log.info("waiting for nodes: %d connected, %d needed (min_available_nodes)", len(nodes), need)
        time.sleep(min(1.0, left))


# --------------------------------------------------------------------------- the strategy
class ByzlabStrategy(FedAvg):
    """A Flower strategy aggregating client updates with a byzlab rule (see the module docstring).

    ``aggregator`` and ``pre_aggregators`` are registered names (``byzlab list``;
    ``plugins`` are modules or ``.py`` files registering more); ``params`` holds the
    tunable parameters of the aggregator, ``pre_params`` those of each pre-aggregator
    by name; ``f`` is what the rules guard against (RoundContext ``f``): required by
    rules that take it (tm, krum, multikrum, bulyan, dnc, nnm, arc, ...), where
    ``f = 0`` warns (tm with f = 0 is the mean); ``lr`` is η sent to the clients,
    ``server_lr`` η_s (default η); ``seed`` seeds the rules' generator;
    ``non_finite`` the policy for non-finite replies (``"drop"`` or ``"propagate"``,
    :mod:`byzlab.core.chain`); ``node_timeout`` how long (s) a round waits for
    ``min_available_nodes`` before a one-line error.  Other keywords go to ``FedAvg``
    (``fraction_train``, ``min_available_nodes``, …).

    Every reply is checked: a reply whose arrays differ from the global model's in
    names, shapes or dtypes is dropped (``malformed``, ``malformed_nodes``); an error
    reply is counted (``failed``); a non-finite one is screened by the chain
    (``non_finite``, ``non_finite_nodes``).  A round whose usable replies are too few
    for the rule keeps θ and says so in a log line.
    """

    def __init__(self, aggregator: str = "cc", *, params: dict | None = None, pre_aggregators: Iterable[str] = (),
                 pre_params: dict[str, dict] | None = None, f: int | None = None, lr: float = 0.1,
                 server_lr: float | None = None, seed: int = 0, plugins: Iterable[str] = (),
                 non_finite: str = "drop", node_timeout: float = 300.0, **kwargs: Any):
        super().__init__(**kwargs)
        for p in plugins:
            load_plugin(p)
        agg = lookup("aggregator", aggregator)
        pre = [lookup("pre_aggregator", n) for n in pre_aggregators]
        for rule in (agg, *pre):
            if "server_update" in rule.context:
                raise ConfigError(f"aggregator: {rule.name!r} needs the server's own update (server_update), which "
                                  "this strategy does not compute; allowed: rules without it")
        unknown = sorted(set(pre_params or {}) - {r.name for r in pre})
        if unknown:
            raise ConfigError(f"pre_params: {unknown[0]!r} is not among pre_aggregators; "
                              f"allowed: {', '.join(r.name for r in pre) or 'none'}")
        self.chain = RuleChain(agg, agg.resolve(params), tuple(pre),
                               tuple(r.resolve((pre_params or {}).get(r.name)) for r in pre), non_finite)
        self.f = _check_f(f, [r for r in (agg, *pre) if "f" in r.context])
        for name, v in (("lr", lr), ("server_lr", lr if server_lr is None else server_lr),
                        ("node_timeout", node_timeout)):
            msg = positive(name, v)
            if msg:
                raise ConfigError(msg)
        self.lr = float(lr)
        self.server_lr = float(lr if server_lr is None else server_lr)
        self.node_timeout = float(node_timeout)
        self.generator = torch.Generator().manual_seed(seed)
        self.rule_state: dict[str, dict] = {}  # RoundContext.state of each rule, by role (as the simulator)
        self.prev_aggregate: torch.Tensor | None = None  # m̃_{t−1}
        self.prev_delta: torch.Tensor | None = None  # Δ_{t−1} (Table II)
        self.byzantine_node_ids: set[int] = set()  # set by OmniscientAttack: the rows it forged this round
        self._theta: ArrayRecord | None = None

    # the rules, as given (the chain holds them)
    @property
    def aggregator(self):
        return self.chain.aggregator

    @property
    def params(self) -> dict:
        return self.chain.params

    @property
    def pre(self):
        return self.chain.pre

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        wait_for_nodes(grid, max(self.min_available_nodes, self.min_train_nodes), self.node_timeout)
        self._theta = arrays
        config["lr"] = self.lr
        return super().configure_train(server_round, arrays, config, grid)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        if self.fraction_evaluate > 0:
            wait_for_nodes(grid, max(self.min_available_nodes, self.min_evaluate_nodes), self.node_timeout)
        return super().configure_evaluate(server_round, arrays, config, grid)

    def context(self, server_round: int, k: int, d: int) -> RoundContext:
        """The RoundContext of round ``server_round`` for ``k`` rows of ``d`` coordinates."""
        prev = self.prev_aggregate
        return RoundContext(t=server_round, k=k, k_m=self.f, f=self.f, lr=self.server_lr, prev_aggregate=prev,
                            center=torch.zeros(d) if prev is None else prev, generator=self.generator)

    def aggregate(self, server_round: int, x: torch.Tensor) -> torch.Tensor:
        """m̃_t = AGG(pre-aggregators(x)) for the ``(k, d)`` updates ``x`` of round ``server_round``."""
        return self._aggregate(server_round, x)[0]

    def _aggregate(self, server_round: int, x: torch.Tensor):
        k, d = x.shape
        rows = self.chain.rows(k)
        msg = self.aggregator.requires(rows, self.f) if self.aggregator.requires else None
        if msg:
            raise ConfigError(msg.replace("k_m", "f"))
        return self.chain.aggregate(x, self.context(server_round, k, d), self.rule_state)

    def trial(self, server_round: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """``RoundContext.aggregate`` for an attack in round ``server_round``: this strategy's chain on a
        trial ``(k, d)`` matrix (benign rows, then the attacked ones), on copies of its states and RNG."""
        def aggregate(x: torch.Tensor) -> torch.Tensor:
            return self.chain.trial(self.context(server_round, *x.shape), self.rule_state)(x)
        return aggregate

    def diagnostics(self, x: torch.Tensor, n_benign: int, aggregate: torch.Tensor,
                    bad: torch.Tensor | None) -> dict[str, float]:
        """:data:`~byzlab.core.chain.DIAGNOSTIC_COLUMNS` of this round (rows: benign first), NaN ones left out."""
        row, delta = diagnostics(x, n_benign, aggregate, self.prev_aggregate, self.prev_delta,
                                 self.chain.clip_radius, bad)
        if delta is not None:
            self.prev_delta = delta
        return {name: float(v) for name, v in zip(DIAGNOSTIC_COLUMNS, row.tolist()) if math.isfinite(v)}

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        ok, failed = self._check_and_log_replies(list(replies), is_train=True, validate=False)
        if self._theta is None:
            return None, None
        bad_replies = {sender(m): why for m in ok if (why := malformed(m, self.arrayrecord_key, self._theta))}
        for node, why in sorted(bad_replies.items()):
            log.warning("round %d: reply of node %d dropped (malformed: %s)", server_round, node, why)
        valid = [m for m in ok if sender(m) not in bad_replies]
        # a fixed row order: benign nodes, then the attacked ones (as the simulator's rows), by node id
        valid.sort(key=lambda m: (sender(m) in self.byzantine_node_ids, sender(m)))
        extra: dict[str, Any] = {"failed": len(failed), "malformed": len(bad_replies)}
        if bad_replies:
            extra["malformed_nodes"] = sorted(bad_replies)
        if not valid:
            return None, MetricRecord(extra)
        theta = to_vector(self._theta)
        x = updates(theta, valid, self.arrayrecord_key, self.lr)
        try:
            aggregate, seen, bad = self._aggregate(server_round, x)
        except ConfigError as e:  # too few usable replies for the rule this round: θ is kept
            log.warning("round %d: %d usable replies, θ kept (%s)", server_round, len(valid), e)
            return None, MetricRecord({**extra, "num_replies": len(valid)})
        byz = [sender(m) in self.byzantine_node_ids for m in valid]
        diag = self.diagnostics(seen, byz.count(False), aggregate, bad)
        found = (~torch.isfinite(row_sq_norms(x)) if bad is None else bad).tolist()
        if any(found):
            nodes = [sender(m) for m, b in zip(valid, found) if b]
            extra["non_finite_nodes"] = nodes
            log.warning("round %d: non-finite replies from nodes %s (%s)", server_round,
                        ", ".join(map(str, nodes)), "screened" if bad is not None else "propagated")
        self.prev_aggregate = aggregate
        metrics = _client_metrics(self, [m for m, b in zip(valid, found) if not b])
        metrics = MetricRecord({**metrics, **diag, **extra, "num_byzantine": sum(byz)})
        return from_vector(theta - self.server_lr * aggregate, self._theta), metrics


def _check_f(f: Any, takers: list) -> int:
    """``f`` checked: an integer >= 0, required when a rule takes it; f = 0 with such a rule warns."""
    if f is None:
        if takers:
            raise ConfigError(f"f: {takers[0].kind} {takers[0].name!r} guards against f Byzantine clients; "
                              "give f, an integer >= 0 (the simulator's default is k_m)")
        return 0
    if isinstance(f, bool) or not isinstance(f, int) or f < 0:
        raise ConfigError(f"f: must be an integer >= 0, got {type(f).__name__} {f!r}")
    if f == 0 and takers:
        msg = (f"f = 0: {takers[0].kind} {takers[0].name!r} then guards against no Byzantine client "
               "(tm with f = 0 is the mean)")
        warnings.warn(msg, UserWarning, stacklevel=3)
        log.warning(msg)
    return f


def _client_metrics(strategy: FedAvg, replies: list[Message]) -> dict:
    """The clients' own metrics averaged as FedAvg does, over the replies that carry them consistently."""
    contents = [m.content for m in replies if m.has_content()]
    try:
        validate_message_reply_consistency(contents, strategy.weighted_by_key, check_arrayrecord=False)
        return dict(strategy.train_metrics_aggr_fn(contents, strategy.weighted_by_key) or {})
    except Exception as e:  # noqa: BLE001 - a client's bad metrics never stop a round
        log.warning("clients' metrics not averaged: %s", e)
        return {}
