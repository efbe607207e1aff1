"""The attack wrapper (:class:`OmniscientAttack`): a research tool for simulations, never for a deployment."""
from __future__ import annotations

import logging
from typing import Iterable

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from ..core.errors import ConfigError
from ..core.registry import RoundContext, lookup
from .strategy import from_vector, malformed, sender, to_vector, updates

log = logging.getLogger("byzlab.flower")


def _lr_of(messages: list[Message], key: str, default: float) -> float:
    for m in messages:
        cfg = m.content.get(key)
        if cfg is not None and "lr" in cfg:
            return float(cfg["lr"])
    return default


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
            raise ConfigError(f"mask: attack {attack!r} needs the layer mask (byzlab.core.models.sparse_mask(model))")
        if "aggregate" in self.attack.context and not callable(getattr(strategy, "trial", None)):
            raise ConfigError(f"attack: {attack!r} queries the defence (RoundContext.aggregate), which "
                              f"{type(strategy).__name__} does not expose; allowed: a ByzlabStrategy")
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
            if len(nodes) - self.num_byzantine < 2:  # the attacks are computed from >= 2 benign replies
                raise ConfigError(f"num_byzantine: must leave at least 2 benign nodes of the {len(nodes)} "
                                  f"connected (<= {len(nodes) - 2}), got {self.num_byzantine}")
            return nodes[-self.num_byzantine:]
        missing = [n for n in self.node_ids if n not in nodes]
        if missing:
            raise ConfigError(f"node_ids: unknown node id {missing[0]}; connected: {', '.join(map(str, nodes))}")
        if len(nodes) - len(self.node_ids) < 2:
            raise ConfigError(f"node_ids: must leave at least 2 benign nodes of the {len(nodes)} connected, "
                              f"got {len(self.node_ids)} attacked")
        return self.node_ids

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        # the wrapped strategy first: it waits for its nodes (ByzlabStrategy: node_timeout), then the
        # Byzantine ones are chosen among the nodes connected
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        self.byzantine = self._choose(grid)
        self.lr = _lr_of(messages, self.configrecord_key, self.lr)
        self._prev_theta, self._theta, self._like = self._theta, to_vector(arrays), arrays
        return messages

    def forge(self, server_round: int, benign: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """``(k_m, d)`` Byzantine updates from the benign ``(k_b, d)`` and the attacked nodes' own updates."""
        prev = None if self._prev_theta is None else (self._prev_theta - self._theta) / self.server_lr
        d = benign.shape[1]
        trial = self.strategy.trial(server_round) if "aggregate" in self.attack.context else None
        ctx = RoundContext(t=server_round, k=benign.shape[0] + own.shape[0], k_m=own.shape[0], f=own.shape[0],
                           lr=self.lr, prev_aggregate=prev, center=torch.zeros(d) if prev is None else prev,
                           generator=self.generator, byzantine=own, mask=self.mask, state=self.state,
                           aggregate=trial)
        out = self.attack(benign, self.params, ctx)
        return out.expand(own.shape[0], d) if out.dim() == 1 else out

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        replies = list(replies)
        key = self.arrayrecord_key
        ok = sorted((m for m in replies if not m.has_error() and malformed(m, key, self._like) is None), key=sender)
        byz = [m for m in ok if sender(m) in self.byzantine]
        benign = [m for m in ok if sender(m) not in self.byzantine]
        swap = {}
        if byz and len(benign) >= 2:
            forged = self.forge(server_round, updates(self._theta, benign, key, self.lr),
                                updates(self._theta, byz, key, self.lr))
            for m, v in zip(byz, forged):
                content = RecordDict({**dict(m.content.items()), key: from_vector(self._theta - self.lr * v, self._like)})
                swap[id(m)] = Message(content=content, metadata=m.metadata)
            replies = [swap.get(id(m), m) for m in replies]
        elif byz:
            log.warning("round %d: %d usable benign replies, fewer than the 2 the attack needs: not attacked",
                        server_round, len(benign))
        if hasattr(self.strategy, "byzantine_node_ids"):  # the defence's diagnostics: the rows actually forged
            self.strategy.byzantine_node_ids = {sender(m) for m in byz} if swap else set()
        return self.strategy.aggregate_train(server_round, replies)

    def configure_evaluate(self, server_round, arrays, config, grid):
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round, replies):
        return self.strategy.aggregate_evaluate(server_round, replies)
