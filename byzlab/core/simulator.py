r"""The federated simulator: Algorithm 1 of the paper, one round at a time.

Read :meth:`Simulation.step` top to bottom: it *is* Algorithm 1.

Layout of the per-round state (all on one device, no host synchronisation
inside a round — no ``.item()``, no Python branch on a tensor's value, no
tensor built from host data; the host only reads numbers at evaluation time):

* ``theta`` — the server model θ as one flat ``(d,)`` tensor.  The model's
  parameters are views into it, so θ_t = θ_{t−1} − η m̃_t (line 14) is one
  in-place vector operation.
* ``X`` — the ``(k, d)`` matrix the server aggregates.  Rows ``[0, k_b)`` *are*
  the benign clients' momenta m_{i,t} (updated in place, line 9); rows
  ``[k_b, k)`` receive the Byzantine vectors (line 11).
* ``byz_momenta`` — the Byzantine clients' own honest momenta, kept only for
  attacks that use them (``label_flip``, ``bit_flip``, user attacks taking
  ``byzantine``).

Client gradients (line 7) for all clients at once, by one of three engines (:mod:`byzlab.core.engines`) that
give the same numbers up to floating-point reassociation:

* ``loop`` (CPU default for the ResNets): one model, a Python loop over clients; each
  backward writes straight into its row of a preallocated ``(n, d)`` gradient
  matrix (``param.grad`` are views into it).
* ``fused`` (CPU default for the cnn and the mlp, :mod:`byzlab.core.fused`): one forward and
  one backward pass over all k·b samples (all clients share θ_{t−1}); only the weight
  gradients are summed per client (batched GEMMs, the weight-gradient kernel per client).
* ``vmap`` (CUDA default): ``torch.func.vmap(grad(functional_call))`` over the
  client dimension — one batched call for all clients, which is what fills a GPU.

BatchNorm.  Every client computes its gradient in train mode, i.e. with the
batch statistics of its own b samples (as a per-client model copy would).
Running statistics are not part of the aggregated vector.  Each client's
running statistics would follow r_{i,t} = (1−μ) r_{i,t−1} + μ s_{i,t} from the
common server value; the server keeps the average over the *benign* clients,
which (the update being linear) is r̄_t = (1−μ) r̄_{t−1} + μ · mean_i s_{i,t}.
Byzantine clients cannot poison the statistics; evaluation uses them in eval
mode.  (The authors' library instead evaluates in train mode with test-batch
statistics.)
"""
from __future__ import annotations

import copy
import math
import os
import time
from typing import Any, Callable

import pandas as pd
import torch

from . import checkpoint
from .chain import DIAGNOSTIC_COLUMNS, RuleChain, call, diagnostics
from .config import NO_ATTACK, RunConfig, resolve_device
from .data import Dataset, augment_batch, load_dataset, run_model
from .draws import draw, run_generator
from .engines import autocast_for, choose_engine, make_engine, precision_scope
from .fused import nhwc
from .provenance import provenance, threads_label
from .models import build_model, sparse_mask
from .partition import partition
from .errors import ConfigError
from .interrupts import one_round
from .registry import AGGREGATORS, ATTACKS, PRE_AGGREGATORS, RoundContext, Rule
from .results import FORMAT_VERSION, HISTORY_COLUMNS, RunResult

#: test images per forward pass of :meth:`Simulation.evaluate` on CPU: a layer's output stays in
#: cache (the paper's cnn, one thread, mnist5k's 1,000 test images at once 105–111 ms, in batches
#: of 256 81–85 ms, ``benchmarks/layout_check.py``, 2026-12-04, 2-core AMD EPYC; the same logits)
EVAL_BATCH = 256


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


# --------------------------------------------------------------------------- simulation
class Simulation:
    """State of one run of Algorithm 1; :meth:`step` performs one communication round."""

    def __init__(self, config: RunConfig | dict | None = None, *, dataset: Dataset | str | None = None,
                 **overrides):
        if isinstance(dataset, str):  # the config field, not preloaded data
            overrides["dataset"], dataset = dataset, None
        cfg = RunConfig.make(config, **overrides)
        self.config = cfg
        self.device = resolve_device(cfg.device)
        data = dataset if dataset is not None else load_dataset(cfg.dataset, root=cfg.data_root, download=cfg.download)
        self.data = data.to(self.device)
        self.num_classes = data.num_classes
        # the crop padding value, on the device once (a host value would be copied every round)
        self._pad_fill = torch.as_tensor(data.pad_value, dtype=self.data.x_train.dtype).to(self.device)

        self.model, self.theta = self._build_model(cfg, data)
        self.d = self.theta.numel()

        # clients: benign are 0..k_b-1, Byzantine k_b..k-1
        self.k, self.k_m = cfg.k, cfg.n_byzantine
        self.k_b = self.k - self.k_m
        self.attack: Rule | None = ATTACKS[cfg.attack] if cfg.attack != NO_ATTACK else None
        # lines 12-13: the server's rules, its screening of non-finite rows (byzlab.core.chain)
        self.chain = RuleChain(AGGREGATORS[cfg.aggregator], cfg.aggregator_params,
                               tuple(PRE_AGGREGATORS[n] for n in cfg.pre_aggregators),
                               tuple(cfg.pre_aggregator_params[n] for n in cfg.pre_aggregators), cfg.non_finite)
        byz_data = cfg.byzantine_train
        # rows of the gradient matrix: benign clients, Byzantine clients training on their
        # own data (data attacks), the server training on its root data (FLTrust-like rules)
        self.n_compute = cfg.n_compute

        n_train = data.y_train.shape[0]
        self._build_shards(cfg, data, byz_data)
        self.schedule = cfg.schedule(n_train)
        self.rounds_per_epoch = self.schedule.rounds_per_epoch
        self.total_rounds = self.schedule.total_rounds
        self.eval_every = self.schedule.eval_every

        # state of Algorithm 1
        self.X = torch.zeros(self.k, self.d, device=self.device)
        # the matrix the rules see after screening (policy "drop"), one buffer for the whole run
        self.screened = torch.empty_like(self.X) if cfg.non_finite == "drop" else None
        self.byz_momenta = torch.zeros(self.k - self.k_b if byz_data else 0, self.d, device=self.device)
        # the server's own momentum on its root data (RoundContext.server_update), when a rule takes it
        self.server_momentum = torch.zeros(self.d, device=self.device) if cfg.server_trains else None
        self.prev_aggregate: torch.Tensor | None = None  # m̃_{t-1}
        self.prev_delta: torch.Tensor | None = None  # Δ_{t-1} (Table II)
        self.rule_state: dict[str, dict] = {}  # RoundContext.state of each rule, by role
        self.t = 0
        self.generator = run_generator(cfg.seed)  # on the CPU on every device: one seed, one set of draws
        self.mask = sparse_mask(self.model).to(self.device) if (self.attack and "mask" in self.attack.context) else None
        self._perm: torch.Tensor | None = None

        # engine
        self.engine_name = engine = choose_engine(cfg.engine, self.model, self.device)
        self.engine = make_engine(engine, self.model, self.theta, self.n_compute, self.device,
                                  autocast_for(cfg.precision, self.device.type))

        # per-round records, kept on the device until an evaluation reads them
        self.round_loss = torch.full((self.total_rounds,), float("nan"), device=self.device)
        self.round_diag = torch.full((self.total_rounds, len(DIAGNOSTIC_COLUMNS)), float("nan"), device=self.device)
        self.history: list[dict] = []
        self.diverged = False
        self._last_eval_t = 0
        self.elapsed = 0.0
        self.threads_seen: set[int] = set()
        self._flip_mask = None
        if self.attack is not None and self.attack.flip_labels:
            flip = torch.zeros(self.n_compute, cfg.b, dtype=torch.bool, device=self.device)
            flip[self.k_b: self.k] = True  # the Byzantine clients' rows, never the server's
            self._flip_mask = flip.view(-1)

    # ------------------------------------------------------------------ construction
    def _build_model(self, cfg: RunConfig, data: Dataset) -> tuple[torch.nn.Module, torch.Tensor]:
        """The model (initialised from ``cfg.seed``) and θ, one flat vector its parameters are views into."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = build_model(run_model(cfg.model, data), data.num_classes, data.input_shape, norm=cfg.norm)
        model = model.to(self.device).train()
        theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        off = 0
        for p in model.parameters():
            p.data = theta[off: off + p.numel()].view_as(p)
            off += p.numel()
        return model, theta

    def _build_shards(self, cfg: RunConfig, data: Dataset, byz_data: bool) -> None:
        """``partition`` (the k clients' sample indices) and the computing clients' shards as one padded
        ``(n_compute, max shard)`` index matrix with ``shard_sizes``; the server's root data last."""
        n_train = data.y_train.shape[0]
        parts = partition(data.y_train.cpu().numpy(), self.k, cfg.partition, alpha=cfg.alpha, seed=cfg.seed)
        shard_list = parts[: self.k if byz_data else self.k_b]
        if cfg.server_trains:  # the server's root data: root_size training samples drawn at random
            if cfg.root_size > n_train:
                raise ConfigError(f"root_size: must be <= {n_train} (training samples of {cfg.dataset}), "
                                  f"got {cfg.root_size}")
            root_gen = torch.Generator().manual_seed(cfg.seed + 1_000_003)
            shard_list = [*shard_list, torch.randperm(n_train, generator=root_gen)[: cfg.root_size].numpy()]
        self.shard_sizes = torch.tensor([len(p) for p in shard_list], device=self.device)
        shards = torch.zeros(self.n_compute, int(self.shard_sizes.max()), dtype=torch.long)
        for i, p in enumerate(shard_list):
            shards[i, : len(p)] = torch.as_tensor(p)
        self.shards = shards.to(self.device)
        self.partition = parts

    # ------------------------------------------------------------------ helpers
    @property
    def done(self) -> bool:
        return self.t >= self.total_rounds or self.diverged

    @property
    def evaluation_due(self) -> bool:
        """Whether round t ends with an evaluation: every ``eval_every`` rounds and after the last."""
        return self.t % self.eval_every == 0 or self.t == self.total_rounds

    @property
    def epoch(self) -> float:
        return self.t / self.rounds_per_epoch

    def lr_at(self, t: int) -> float:
        """η_t: ``lr`` decayed by ``lr_decay`` from epoch ⌊lr_decay_at · epochs⌋ on (paper: ×0.1 at 75)."""
        cfg = self.config
        epoch = (t - 1) // self.rounds_per_epoch
        return cfg.lr * (cfg.lr_decay if epoch >= math.floor(cfg.lr_decay_at * cfg.epochs) else 1.0)

    def sample(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each computing client draws b samples of its own shard (reshuffled every epoch)."""
        b, r = self.config.b, (t - 1) % self.rounds_per_epoch
        if r == 0 or self._perm is None:
            keys = draw(self.generator, torch.rand, self.shards.shape, device=self.device)
            pad = torch.arange(self.shards.shape[1], device=self.device)[None, :] >= self.shard_sizes[:, None]
            self._perm = keys.masked_fill(pad, 2.0).argsort(dim=1)
        pos = (r * b + torch.arange(b, device=self.device))[None, :] % self.shard_sizes[:, None]
        idx = self.shards.gather(1, self._perm.gather(1, pos)).reshape(-1)
        x, y = self.data.x_train.index_select(0, idx), self.data.y_train.index_select(0, idx)  # x[idx], 5x faster
        if self.data.augment:
            x = augment_batch(x, self.generator, fill=self._pad_fill)
        if self._flip_mask is not None:
            y = torch.where(self._flip_mask, self.num_classes - 1 - y, y)
        return x, y

    def context(self, t: int, lr: float) -> RoundContext:
        """The :class:`~byzlab.core.registry.RoundContext` of round ``t`` (state filled per rule)."""
        prev = self.prev_aggregate
        return RoundContext(
            t=t, k=self.k, k_m=self.k_m, f=self.config.f, lr=lr, prev_aggregate=prev,
            center=torch.zeros(self.d, device=self.device) if prev is None else prev,
            generator=self.generator, byzantine=self.byz_momenta, mask=self.mask,
            server_update=self.server_momentum)

    def server_aggregate(self, X: torch.Tensor, ctx: RoundContext) -> torch.Tensor:
        """m̃_t for the ``(k, d)`` matrix ``X`` (lines 12-13 of Algorithm 1), updating the rules' states."""
        return self.chain.aggregate(X, ctx, self.rule_state)[0]

    # ------------------------------------------------------------------ Algorithm 1
    def step(self) -> None:
        """One communication round t of Algorithm 1."""
        # Client side, lines 3-7: every benign client (and, for data attacks, every
        # Byzantine client on its own data) computes g_{i,t} at θ_{t-1} on b samples.
        x, y = self.sample(self.t + 1)
        with precision_scope(self.config.precision):
            grads, losses = self.engine(x, y, self.n_compute, self.k_b)
            self.threads_seen.add(torch.get_num_threads())  # provenance: the thread counts of its rounds
            self.finish_round(grads, losses)

    def finish_round(self, grads: torch.Tensor, losses: torch.Tensor) -> None:
        """Lines 8-15 of Algorithm 1, given the clients' gradients ``(n_compute, d)`` and losses.

        Split from :meth:`step` so that :class:`~byzlab.core.batched.BatchedSimulation` can
        compute the gradients of several runs in one call.
        """
        cfg, t = self.config, self.t + 1
        lr = self.lr_at(t)
        ctx = self.context(t, lr)
        if cfg.weight_decay:
            grads.add_(self.theta, alpha=cfg.weight_decay)

        # Line 9: worker momentum m_{i,t} = (1 - β) g_{i,t} + β m_{i,t-1}  (Eq. 7),
        # as m + (1 - β)(g - m): one pass over the (k_b, d) matrix.
        benign = self.X[: self.k_b]
        benign.lerp_(grads[: self.k_b], 1 - cfg.beta)
        if self.byz_momenta.shape[0]:
            self.byz_momenta.lerp_(grads[self.k_b: self.k], 1 - cfg.beta)
        if self.server_momentum is not None:  # the server's momentum on its root data, same rule
            self.server_momentum.lerp_(grads[-1], 1 - cfg.beta)

        # Line 11: Byzantine clients send Attack(H_t).
        # (An adaptive attack queries the server's chain through ctx.aggregate, on copies of its state.)
        if self.attack is not None:
            self.X[self.k_b:] = call(self.attack, benign, cfg.attack_params, ctx, self.rule_state, "attack",
                                     self.chain, out=self.screened)

        # Lines 12-13: m̃_t = AGG(m_{1,t}, ..., m_{k,t}) (after optional pre-aggregation), non-finite
        # rows screened out first under the "drop" policy (byzlab.core.chain).
        aggregate, seen, bad = self.chain.aggregate(self.X, ctx, self.rule_state, out=self.screened)

        # Diagnostics (optional, on the device): Tables II-III, clip fraction, ‖m̃_t‖, rows screened.
        self.round_loss[t - 1] = losses[: self.k_b].mean()
        if cfg.diagnostics:
            self.round_diag[t - 1], delta = diagnostics(seen, self.k_b, aggregate, self.prev_aggregate,
                                                        self.prev_delta, self.chain.clip_radius, bad)
            if delta is not None:
                self.prev_delta = delta

        # Line 14: θ_t = θ_{t-1} - η m̃_t  (line 15, the broadcast, is implicit: all clients read θ).
        self.theta.sub_(aggregate, alpha=lr)
        self.prev_aggregate = aggregate
        self.t = t

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self) -> float:
        """Test accuracy (%) of the server model θ_t in eval mode (server BatchNorm statistics)."""
        self.model.eval()
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        xs, ys = self.data.x_test, self.data.y_test
        # images in NHWC on CPU, as the fused engine trains them: oneDNN's NHWC kernels (one thread,
        # 1,000 MNIST images through the cnn 215 -> 106 ms, benchmarks/layout_check.py); the same
        # logits up to the order of additions.  Batches of EVAL_BATCH keep a layer's output in cache
        # (the cnn's conv1 output of 1,000 images is 46 MB)
        layout = nhwc if xs.dim() == 4 and xs.device.type == "cpu" else (lambda x: x)
        step = EVAL_BATCH if xs.device.type == "cpu" else 2000
        for i in range(0, xs.shape[0], step):
            correct += (self.model(layout(xs[i: i + step])).argmax(1) == ys[i: i + step]).sum()
        self.model.train()
        return 100.0 * correct.item() / xs.shape[0]

    def record(self) -> dict:
        """Evaluate and append one row (round, epoch, test accuracy, train loss, diagnostics) to the history."""
        lo, hi = self._last_eval_t, self.t
        loss = torch.nanmean(self.round_loss[lo:hi]).item() if hi > lo else float("nan")
        finite = bool(torch.isfinite(self.theta).all().item()) and math.isfinite(loss)
        if finite:
            acc = self.evaluate()
        else:  # diverged: the paper reports chance level
            self.diverged = True
            acc = 100.0 / self.num_classes
        diag = torch.nanmean(self.round_diag[lo:hi], dim=0).tolist() if hi > lo else [float("nan")] * len(DIAGNOSTIC_COLUMNS)
        row = {"round": self.t, "epoch": self.epoch, "lr": self.lr_at(max(self.t, 1)),
               "test_accuracy": acc, "train_loss": loss if finite else float("nan"),
               **dict(zip(DIAGNOSTIC_COLUMNS, diag)), "diverged": self.diverged,
               "wall_time": self.elapsed}
        self.history.append(row)
        self._last_eval_t = hi
        return row

    # ------------------------------------------------------------------ driving
    def advance(self, rounds: int | None = None, callback: Callable[[dict], Any] | None = None) -> None:
        """Run ``rounds`` more rounds (None → to the end), evaluating at the configured cadence."""
        end = self.total_rounds if rounds is None else min(self.total_rounds, self.t + rounds)
        while self.t < end and not self.diverged:
            with one_round():  # a deferred Ctrl-C is raised after the round and its evaluation
                t0 = time.perf_counter()
                self.step()
                self.elapsed += time.perf_counter() - t0
                if self.evaluation_due:
                    row = self.record()
                    if callback is not None:
                        callback(row)

    def result(self) -> RunResult:
        """The run so far as a :class:`~byzlab.core.results.RunResult`: its history, one row per round, and metadata."""
        n = self.t
        rounds = pd.DataFrame(torch.cat([self.round_loss[:n, None], self.round_diag[:n]], dim=1).cpu().numpy(),
                              columns=["train_loss", *DIAGNOSTIC_COLUMNS])
        rounds.insert(0, "round", range(1, n + 1))
        meta = {
            "format": FORMAT_VERSION,
            **provenance(self.engine_name, self.config.precision, self.device, threads_label(self.threads_seen)),
            "d": self.d,
            "rounds_per_epoch": self.rounds_per_epoch,
            "total_rounds": self.total_rounds,
            "seconds_per_round": (self.elapsed / n) if n else float("nan"),
            "key": self.config.key(),
        }
        return RunResult(self.config, pd.DataFrame(self.history, columns=list(HISTORY_COLUMNS)), rounds, meta)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything needed to continue the run bit for bit (also used to fork runs)."""
        return {
            "identity": self.config.identity(),
            "t": self.t,
            "theta": self.theta.clone(),
            "X": self.X.clone(),
            "byz_momenta": self.byz_momenta.clone(),
            "prev_aggregate": None if self.prev_aggregate is None else self.prev_aggregate.clone(),
            "prev_delta": None if self.prev_delta is None else self.prev_delta.clone(),
            "rule_state": copy.deepcopy(self.rule_state),
            "server_momentum": None if self.server_momentum is None else self.server_momentum.clone(),
            "buffers": {n: b.clone() for n, b in self.model.named_buffers()},
            "generator": self.generator.get_state(),
            "perm": None if self._perm is None else self._perm.clone(),
            "round_loss": self.round_loss.clone(),
            "round_diag": self.round_diag.clone(),
            "history": [dict(r) for r in self.history],
            "diverged": self.diverged,
            "last_eval_t": self._last_eval_t,
            "elapsed": self.elapsed,
            "threads_seen": sorted(self.threads_seen),
        }

    def load_state_dict(self, state: dict, *, strict_config: bool = True) -> None:
        if strict_config and state["identity"] != self.config.identity():
            raise ValueError("checkpoint: it was written by a run with a different config")
        dev = self.device
        self.t = state["t"]
        self.theta.copy_(state["theta"].to(dev))
        self.X.copy_(state["X"].to(dev))
        if self.byz_momenta.shape == state["byz_momenta"].shape:
            self.byz_momenta.copy_(state["byz_momenta"].to(dev))
        self.prev_aggregate = None if state["prev_aggregate"] is None else state["prev_aggregate"].to(dev)
        self.prev_delta = None if state["prev_delta"] is None else state["prev_delta"].to(dev)
        self.rule_state = _to_device(copy.deepcopy(state.get("rule_state", {})), dev)
        if self.server_momentum is not None and state.get("server_momentum") is not None:
            self.server_momentum.copy_(state["server_momentum"].to(dev))
        bufs = dict(self.model.named_buffers())
        for n, b in state["buffers"].items():
            bufs[n].copy_(b.to(dev))
        gen_state = state["generator"].cpu()
        if gen_state.numel() != self.generator.get_state().numel():  # a CUDA generator's, from before draws.py
            raise ValueError("checkpoint: its random state is a CUDA generator's (written before runs drew on "
                             "the CPU generator on every device); start the run again")
        self.generator.set_state(gen_state)
        self._perm = None if state["perm"] is None else state["perm"].to(dev)
        n = min(self.total_rounds, state["round_loss"].shape[0])
        self.round_loss[:n] = state["round_loss"][:n].to(dev)
        self.round_diag[:n] = state["round_diag"][:n].to(dev)
        self.history = [dict(r) for r in state["history"]]
        self.diverged = state["diverged"]
        self._last_eval_t = state["last_eval_t"]
        self.elapsed = state["elapsed"]
        self.threads_seen = set(state.get("threads_seen", ()))

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write the state atomically (temporary file + rename); see :mod:`byzlab.core.checkpoint`."""
        checkpoint.save(self, path)

    def load_checkpoint(self, path: str | os.PathLike, on_bad: str = "error") -> int:
        """Continue from the checkpoint at ``path`` (see :func:`byzlab.core.checkpoint.restore`)."""
        return checkpoint.restore(self, path, on_bad)

    def fork(self, **changes: Any) -> "Simulation":
        """A new simulation continuing from this one's state with some knobs changed.

        Changes that keep the set of clients (e.g. ``z``, ``lam``, ``tau``, ``beta``,
        another omniscient attack or aggregator) continue from the current round;
        changes to the data, model or number of Byzantine clients raise ValueError.
        """
        cfg = self.config.replace(**changes)
        same = ("dataset", "model", "norm", "partition", "alpha", "k", "b", "seed", "epochs", "max_rounds")
        if any(getattr(cfg, f) != getattr(self.config, f) for f in same) or cfg.n_byzantine != self.k_m:
            raise ValueError("fork: only rule parameters, beta and lr settings can change mid-run")
        child = Simulation(cfg, dataset=self.data)
        child.load_state_dict(self.state_dict(), strict_config=False)
        return child
