"""Flower apps on byzlab's data and models, and an in-process driver (no network, no Ray)."""
from __future__ import annotations

import contextlib
import logging
import random
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Strategy

from ..core.errors import ConfigError
from ..core.registry import lookup
from .attack import OmniscientAttack
from .strategy import ByzlabStrategy, to_vector

log = logging.getLogger("byzlab.flower")


# --------------------------------------------------------------------------- a ClientApp on byzlab's data
def digits_client_app(dataset: str = "digits", *, k: int = 10, partition: str = "iid", alpha: float = 1.0,
                      seed: int = 0, b: int = 32, beta: float = 0.0, model: str | None = None) -> ClientApp:
    """A ClientApp: node ``partition-id`` (node config) trains on its shard of ``dataset`` split as byzlab does.

    One round = one gradient g on b samples at θ_{t−1}, worker momentum
    m ← (1−β) g + β m (kept in the node's ``context.state``), reply θ_{t−1} − η m.
    Evaluation replies the test accuracy of the received model.
    """
    from ..core.data import load_dataset, run_model
    from ..core.partition import partition as split
    from ..core.models import build_model

    data = load_dataset(dataset, download=False)
    parts = split(data.y_train.numpy(), k, partition, alpha=alpha, seed=seed)
    net = build_model(run_model(model, data), data.num_classes, data.input_shape)
    app = ClientApp()

    def load(msg: Message) -> None:
        net.load_state_dict(msg.content["arrays"].to_torch_state_dict())

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        i = int(context.node_config["partition-id"])
        lr, t = float(msg.content["config"]["lr"]), int(msg.content["config"]["server-round"])
        load(msg)
        g = torch.Generator().manual_seed(seed * 100_003 + i * 1009 + t)
        idx = torch.as_tensor(parts[i])[torch.randperm(len(parts[i]), generator=g)[:b]]
        net.train()
        net.zero_grad()
        loss = F.cross_entropy(net(data.x_train[idx]), data.y_train[idx])
        loss.backward()
        grad = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
        prev = context.state.get("byzlab-momentum")
        m = (1 - beta) * grad + (0.0 if prev is None else beta * to_vector(prev))  # m_0 = 0 (Eq. 7)
        context.state["byzlab-momentum"] = ArrayRecord([m.numpy()])
        with torch.no_grad():
            theta = torch.nn.utils.parameters_to_vector(net.parameters())
            torch.nn.utils.vector_to_parameters(theta - lr * m, net.parameters())
        content = RecordDict({"arrays": ArrayRecord(net.state_dict()),
                              "metrics": MetricRecord({"train-loss": float(loss.detach()), "num-examples": len(idx)})})
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        load(msg)
        net.eval()
        with torch.no_grad():
            acc = float((net(data.x_test).argmax(1) == data.y_test).float().mean())
        content = RecordDict({"metrics": MetricRecord({"accuracy": acc, "num-examples": len(data.y_test)})})
        return Message(content=content, reply_to=msg)

    return app


# --------------------------------------------------------------------------- in-process driver
class LocalGrid(Grid):
    """A Grid that runs a ClientApp in this process, one Context per node (no network, no Ray).

    Node ``i`` gets node id ``node_ids[i]`` (default 1 … n) and node config
    ``partition-id = i``, ``num-partitions = n``, as ``flower-supernode --node-config``
    would give it; contexts (``context.state``) persist across rounds.
    """

    def __init__(self, client_app: ClientApp, num_nodes: int, node_ids: list[int] | None = None, run_id: int = 1):
        ids = list(node_ids) if node_ids is not None else list(range(1, num_nodes + 1))
        if len(ids) != num_nodes:
            raise ConfigError(f"node_ids: need {num_nodes} ids, got {len(ids)}")
        self.app, self._run, self._n = client_app, run_id, 0
        self.contexts = {nid: Context(run_id=run_id, node_id=nid, state=RecordDict(), run_config={},
                                      node_config={"partition-id": i, "num-partitions": num_nodes})
                         for i, nid in enumerate(ids)}
        self._replies: dict[str, Message] = {}

    def set_run(self, run) -> None:
        self._run = run

    @property
    def run(self):
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:
        return Message(content=content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id,
                       ttl=ttl)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Run the ClientApp on each message; the ids returned are this grid's own.

        (A SuperLink writes the message id into the message's metadata on arrival; Flower
        has no public setter for it, so the messages are left as they are and the replies
        are kept under this grid's ids.)  A ClientApp that raises gives an error reply,
        as a deployment's ``flwr-clientapp`` does: the strategy counts it as a failure."""
        ids = []
        for msg in messages:
            self._n += 1
            node = msg.metadata.dst_node_id
            try:
                out = self.app(msg, self.contexts[node])
            except Exception as e:  # noqa: BLE001 - a failing client is one dropped reply, not the end of the run
                log.warning("node %d: the ClientApp raised %s: %s", node, type(e).__name__, e)
                out = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=f"{type(e).__name__}: {e}"),
                              reply_to=msg)
            self._replies[f"m{self._n}"] = out
            ids.append(f"m{self._n}")
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))


@contextlib.contextmanager
def _quiet(on: bool = True):
    """Within the block, Flower logs warnings and errors only."""
    logger = logging.getLogger("flwr")
    level = logger.level
    if on:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_inprocess(strategy: Strategy, client_app: ClientApp, initial_arrays: ArrayRecord, *, num_nodes: int,
                  rounds: int, node_ids: list[int] | None = None, seed: int = 0,
                  evaluate_fn: Callable | None = None, quiet: bool = True):
    """``strategy.start(...)`` on a :class:`LocalGrid` of ``num_nodes`` in-process nodes; Flower's ``Result``.

    ``quiet`` keeps Flower's per-round log lines (INFO) out of the output.  A strategy
    (or the one an :class:`OmniscientAttack` wraps) that waits for more nodes than
    ``num_nodes`` (``min_available_nodes``, ``min_train_nodes``, ``min_evaluate_nodes``)
    is a one-line ConfigError before the run starts: the in-process nodes never change."""
    name, need = nodes_needed(strategy)
    if need > num_nodes:
        raise ConfigError(f"{name}: the strategy waits for {need} nodes, run_inprocess starts num_nodes="
                          f"{num_nodes}; allowed: <= {num_nodes}")
    state = random.getstate()
    random.seed(seed)  # Flower samples nodes with `random`
    try:
        grid = LocalGrid(client_app, num_nodes, node_ids)
        with _quiet(quiet), server_identity():
            return strategy.start(grid=grid, initial_arrays=initial_arrays, num_rounds=rounds,
                                  evaluate_fn=evaluate_fn)
    finally:
        random.setstate(state)


_NODE_SETTINGS = ("min_available_nodes", "min_train_nodes", "min_evaluate_nodes")


def _inner(strategy: Strategy) -> Strategy:
    """The strategy that samples the nodes (inside an :class:`OmniscientAttack`)."""
    return strategy.strategy if isinstance(strategy, OmniscientAttack) else strategy


def nodes_needed(strategy: Strategy) -> tuple[str, int]:
    """The node-count setting of ``strategy`` that asks for the most nodes, and its value."""
    inner = _inner(strategy)
    found = [(getattr(inner, n), n) for n in _NODE_SETTINGS if isinstance(getattr(inner, n, None), int)]
    if isinstance(inner, FedAvg) and inner.fraction_evaluate == 0:  # no evaluation round samples nodes
        found = [(v, n) for v, n in found if n != "min_evaluate_nodes"]
    value, name = max(found, default=(0, "min_available_nodes"))
    return name, value


@contextlib.contextmanager
def server_identity(run_id: int = 1):
    """Within the block, this process is a ServerApp task (instruction messages read its identity);
    the previous identity (or none) is restored after, through ``TaskIdentity``'s public properties."""
    from flwr.supercore.task_identity import TaskIdentity

    def current(name: str):
        try:
            return getattr(TaskIdentity, name)
        except RuntimeError:  # not set in this process
            return None

    saved = {n: current(n) for n in ("task_id", "run_id", "node_id")}
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run_id, 1
    try:
        yield
    finally:
        for n, v in saved.items():
            setattr(TaskIdentity, n, v)


def initial_arrays(dataset: str = "digits", model: str | None = None, seed: int = 0) -> ArrayRecord:
    """The initial model of a byzlab run with this seed, as an ArrayRecord."""
    from ..core.data import load_dataset, run_model
    from ..core.models import build_model

    data = load_dataset(dataset, download=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_model(run_model(model, data), data.num_classes, data.input_shape)
    return ArrayRecord(net.state_dict())


def _test_accuracy(dataset: str, model: str | None) -> Callable[[int, ArrayRecord], MetricRecord]:
    from ..core.data import load_dataset, run_model
    from ..core.models import build_model

    data = load_dataset(dataset, download=False)
    net = build_model(run_model(model, data), data.num_classes, data.input_shape)

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        net.load_state_dict(arrays.to_torch_state_dict())
        net.eval()
        with torch.no_grad():
            acc = float((net(data.x_test).argmax(1) == data.y_test).float().mean())
        return MetricRecord({"test-accuracy": 100.0 * acc})

    return evaluate


def run_flower(*, dataset: str = "digits", attack: str = "rop", aggregator: str = "cc", k: int = 10,
               n_byzantine: int = 2, rounds: int = 30, lr: float = 0.1, b: int = 32, beta: float = 0.0,
               seed: int = 0, partition: str = "iid", params: dict | None = None,
               attack_params: dict | None = None):
    """One in-process Flower run of byzlab's setting; ``(Result, strategy)``.

    Nodes ``k − n_byzantine + 1 … k`` are the Byzantine ones (as in the simulator, the last
    clients); they train honestly on their shards, then their replies are replaced by the attack."""
    with _quiet():
        strategy = ByzlabStrategy(aggregator, params=params, f=n_byzantine, lr=lr, seed=seed, fraction_evaluate=0.0,
                                  min_available_nodes=k, min_train_nodes=k)
    outer = strategy if attack == "none" or not n_byzantine else OmniscientAttack(
        strategy, attack, node_ids=range(k - n_byzantine + 1, k + 1), params=attack_params, lr=lr, seed=seed)
    app = digits_client_app(dataset, k=k, partition=partition, seed=seed, b=b, beta=beta)
    result = run_inprocess(outer, app, initial_arrays(dataset, seed=seed), num_nodes=k, rounds=rounds, seed=seed,
                           evaluate_fn=_test_accuracy(dataset, None))
    return result, strategy


def make_server_app(*, dataset: str = "digits", aggregator: str = "cc", params: dict | None = None,
                    attack: str = "none", num_byzantine: int = 0, attack_params: dict | None = None,
                    rounds: int = 3, lr: float = 0.1, seed: int = 0, min_nodes: int = 2,
                    out: str | None = None):
    """A ServerApp running :class:`ByzlabStrategy` (wrapped in :class:`OmniscientAttack` when ``attack`` is set)
    for ``rounds`` rounds, evaluating the global model on the test set; writes the per-round
    metrics as JSON to ``out`` when given."""
    from flwr.serverapp import ServerApp

    lookup("aggregator", aggregator).resolve(params)  # bad input fails here, not inside the ServerApp process
    if attack != "none":
        lookup("attack", attack).resolve(attack_params)
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = ByzlabStrategy(aggregator, params=params, f=num_byzantine, lr=lr, seed=seed,
                                  fraction_evaluate=0.0, min_available_nodes=min_nodes, min_train_nodes=min_nodes)
        outer = strategy if attack == "none" else OmniscientAttack(
            strategy, attack, num_byzantine=num_byzantine, params=attack_params, lr=lr, seed=seed)
        result = outer.start(grid=grid, initial_arrays=initial_arrays(dataset, seed=seed), num_rounds=rounds,
                             evaluate_fn=_test_accuracy(dataset, None))
        if out is not None:
            import json

            with open(out, "w") as fh:
                json.dump({"train": {r: dict(m) for r, m in result.train_metrics_clientapp.items()},
                           "evaluate": {r: dict(m) for r, m in result.evaluate_metrics_serverapp.items()},
                           "byzantine": list(getattr(outer, "byzantine", []))}, fh)

    return app
