r"""Per-client reference implementation of Algorithm 1: one model copy per client.

Two uses:

* the **speed baseline** of ``bench.py`` (the design of the paper authors'
  library, written minimally; it is not their code), and
* the **test reference** of ``tests/test_reference.py``: an independent,
  plainly written implementation whose θ after a few rounds must equal that of
  :class:`byzlab.Simulation` (both gradient engines) up to floating-point
  rounding.

Everything in a round is written per client and in textbook form, with none of
the simulator's machinery:

* every benign client holds its own deep-copied model; each round it loads the
  server state (parameters *and* BatchNorm running statistics), computes its
  gradient g_{i,t} on its own batch with one forward+backward in train mode
  (Algorithm 1, lines 4–7), which also advances its own running statistics, and
  keeps its own momentum m_{i,t} = (1 − β) g_{i,t} + β m_{i,t−1} (line 9, Eq. 7);
* the Byzantine clients send the omniscient attack of the round (line 11):
  ROP (Algorithm 3), ALIE (Eqs. 2–4, unbiased standard deviation) or IPM
  (−ε m̄_t);
* the server aggregates the k vectors (line 13) with CC (Eq. 6 / Algorithm 2,
  one iteration, centre m̃_{t−1}, zeros at t = 1), TM (sort each coordinate,
  drop the f smallest and f largest) or RFA (smoothed Weiszfeld from z = 0),
  and steps θ_t = θ_{t−1} − η_t m̃_t (line 14);
* the server's BatchNorm running statistics are the mean of the *benign*
  clients' statistics after their step (the simulator's convention, see the
  docstring of :mod:`byzlab.core.simulator`); they never enter θ.

Batch sampling follows the simulator's specification (the same random draws
from one CPU ``torch.Generator`` seeded with ``seed``, whatever the device; each
draw is then moved to the device), re-implemented here client by client:

* shards: ``byzlab.core.data.partition(y_train, k, kind, alpha, seed)``; only the
  k_b benign clients compute (the three attacks here are omniscient and need no
  Byzantine data);
* rounds per epoch R = max(1, ⌊⌊N/k⌋ / b⌋); at the first round of every epoch
  one ``torch.rand((k_b, max_i n_i))`` matrix of sort keys (default dtype) is drawn, and client
  i orders its n_i samples by the first n_i keys of its row;
* in round t, with r = (t − 1) mod R, client i takes the samples at positions
  (r·b + j) mod n_i, j = 0..b−1, of its order;
* with augmentation (CIFAR), three draws follow for all k_b·b samples of the
  round in client order: crop offsets top and left (``randint(0, 2p+1)``, p = 4)
  and a flip bit (``randint(0, 2)``); each image is padded by p pixels of
  ``pad_value``, cropped at (top, left) and mirrored left–right if its bit is 1;
* η_t = lr, times ``lr_decay`` from epoch ⌊lr_decay_at · epochs⌋ on (0-based).

Dependencies on byzlab: only :class:`byzlab.core.data.Dataset` (the container of the
tensors) and :func:`byzlab.core.data.partition` (which client holds which samples);
the model is passed in (the test builds it with :func:`byzlab.core.models.build_model`,
the architecture is not what the reference checks).  Nothing is taken from
``byzlab.core.aggregators``, ``byzlab.core.attacks``, the registries or the simulator
(importing ``byzlab.core.data`` loads the package, but none of those is called).
No weight decay, no pre-aggregators, fp32/fp64 only (whatever dtype the model
and data have).

Data are ready tensors on the device (the authors' library decodes images per
sample, which this baseline does not copy), so as a speed baseline it isolates
the cost of the per-client structure itself.
"""
from __future__ import annotations

import copy
import math
import statistics

import torch
import torch.nn.functional as F

from byzlab.core.data import Dataset
from byzlab.core.partition import partition

ATTACKS = ("rop", "alie", "ipm")
AGGREGATORS = ("cc", "tm", "rfa")


# --------------------------------------------------------------------------- attacks
def rop(benign: torch.Tensor, prev: torch.Tensor | None, z: float, lam: float) -> torch.Tensor:
    r"""Relocated Orthogonal Perturbation (Algorithm 3).

    m̃_{t−1} := m̄_t at t = 1 (lines 2–3); r = λ m̃_{t−1} + (1 − λ) m̄_t (line 4);
    p = 1 − Proj(1, r) (lines 1, 5–6); m_byz = m̃_{t−1} + z p/‖p‖ (line 7).
    """
    mean = benign.mean(0)
    centre = mean if prev is None else prev
    r = lam * centre + (1 - lam) * mean
    p = torch.ones_like(r)
    p = p - (p @ r) / (r @ r) * r
    return centre + z * p / p.norm()


def alie_z_max(k: int, k_m: int) -> float:
    r"""z^max of ALIE (Eqs. 2–3): s = ⌊k/2 + 1⌋ − k_m, z^max = Φ⁻¹((k − k_m − s)/(k − k_m))."""
    s = math.floor(k / 2 + 1) - k_m
    return statistics.NormalDist().inv_cdf((k - k_m - s) / (k - k_m))


def alie(benign: torch.Tensor, z: float) -> torch.Tensor:
    r"""A Little Is Enough (Eq. 4): m̄_t − z σ̄_t, σ̄_t the unbiased (n − 1) coordinate-wise std."""
    n = benign.shape[0]
    mean = benign.sum(0) / n
    std = (((benign - mean) ** 2).sum(0) / (n - 1)).sqrt()
    return mean - z * std


def ipm(benign: torch.Tensor, eps: float) -> torch.Tensor:
    r"""Inner Product Manipulation: −ε m̄_t."""
    return -eps * benign.mean(0)


# --------------------------------------------------------------------------- aggregators
def centered_clip(x: torch.Tensor, centre: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Centered Clipping, one iteration (Eq. 6, Algorithm 2): the mean over the rows of
    f_cc(m_i) = c + min{1, τ/‖m_i − c‖}(m_i − c); also returns how many rows were clipped (a tensor)."""
    diff = x - centre
    scale = (tau / diff.norm(dim=1)).clamp(max=1.0)  # τ/0 = inf → 1: a row at the centre is kept
    return (centre + scale[:, None] * diff).mean(0), (scale < 1).sum()


def trimmed_mean(x: torch.Tensor, f: int) -> torch.Tensor:
    r"""Trimmed mean (Section III-D): sort every coordinate, drop the f smallest and f largest values,
    average the k − 2f others."""
    k = x.shape[0]
    return x.sort(dim=0).values[f: k - f].mean(0)


def rfa(x: torch.Tensor, iters: int, nu: float) -> torch.Tensor:
    r"""RFA (Section III-D): T smoothed Weiszfeld steps from z = 0,
    z ← Σ_i w_i m_i / Σ_i w_i with w_i = 1 / max(‖z − m_i‖, ν)."""
    z = torch.zeros_like(x[0])
    for _ in range(iters):
        w = 1.0 / (x - z).norm(dim=1).clamp_min(nu)
        z = (w[:, None] * x).sum(0) / w.sum()
    return z


# --------------------------------------------------------------------------- the loop
class PerClientLoop:
    """Algorithm 1 with a model copy per benign client; :meth:`step` is one round.

    ``model`` is the server model at θ_0 (it is trained in place); ``data`` a
    :class:`~byzlab.core.data.Dataset`.  ``attack`` ∈ {rop, alie, ipm},
    ``aggregator`` ∈ {cc, tm, rfa}.  ``z`` is ROP's z (default 1) or ALIE's z
    (default z^max of Eq. 3); ``f`` is TM's trim count (default k_m).
    """

    def __init__(self, model: torch.nn.Module, data: Dataset, *, k: int = 25, k_m: int = 5, b: int = 32,
                 beta: float = 0.9, lr: float = 0.1, epochs: int = 100, lr_decay: float = 0.1,
                 lr_decay_at: float = 0.75, attack: str = "rop", aggregator: str = "cc",
                 tau: float = 1.0, z: float | None = None, lam: float = 0.9, eps: float = 0.2,
                 f: int | None = None, rfa_iters: int = 3, nu: float = 0.1,
                 partition_kind: str = "iid", alpha: float = 1.0, seed: int = 0):
        if attack not in ATTACKS or aggregator not in AGGREGATORS:
            raise ValueError(f"attack must be one of {ATTACKS} and aggregator one of {AGGREGATORS}")
        self.device = data.x_train.device
        self.data, self.k, self.k_m, self.k_b, self.b = data, k, k_m, k - k_m, b
        self.beta, self.lr, self.epochs, self.lr_decay, self.lr_decay_at = beta, lr, epochs, lr_decay, lr_decay_at
        self.attack, self.aggregator = attack, aggregator
        self.tau, self.lam, self.eps, self.rfa_iters, self.nu = tau, lam, eps, rfa_iters, nu
        self.z = (1.0 if attack == "rop" else alie_z_max(k, k_m)) if z is None else z
        self.f = k_m if f is None else f

        self.server = model.to(self.device).train()
        self.clients = [copy.deepcopy(self.server) for _ in range(self.k_b)]
        d = sum(p.numel() for p in self.server.parameters())
        dtype = next(self.server.parameters()).dtype
        self.momenta = [torch.zeros(d, dtype=dtype, device=self.device) for _ in self.clients]

        self.generator = torch.Generator().manual_seed(seed)  # on the CPU for every device
        parts = partition(data.y_train.cpu().numpy(), k, partition_kind, alpha=alpha, seed=seed)
        self.shards = [torch.as_tensor(p, device=self.device) for p in parts[: self.k_b]]
        self.rounds_per_epoch = max(1, (data.y_train.shape[0] // k) // b)
        self.orders: list[torch.Tensor] | None = None
        self.fill = torch.as_tensor(data.pad_value, dtype=data.x_train.dtype, device=self.device).reshape(-1)

        self.t = 0
        self.prev: torch.Tensor | None = None  # the last aggregate: m̃_{t−1} during round t, m̃_t after it
        self.clipped: list[torch.Tensor] = []  # CC: rows clipped in each round

    # ------------------------------------------------------------------ helpers
    @property
    def theta(self) -> torch.Tensor:
        """The server parameters θ_t as one flat vector (order of ``model.parameters()``)."""
        return torch.cat([p.detach().reshape(-1) for p in self.server.parameters()])

    def lr_at(self, t: int) -> float:
        epoch = (t - 1) // self.rounds_per_epoch
        return self.lr * (self.lr_decay if epoch >= math.floor(self.lr_decay_at * self.epochs) else 1.0)

    def _augment(self, x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor,
                 p: int = 4) -> torch.Tensor:
        """Pad one client's batch by ``p`` pixels of ``pad_value``, crop each image at (top, left), mirror if flip."""
        n, c, h, w = x.shape
        canvas = self.fill.view(1, -1, 1, 1).expand(n, c, h + 2 * p, w + 2 * p).clone()
        canvas[:, :, p: p + h, p: p + w] = x
        j = torch.arange(w, device=x.device)
        rows = top[:, None] + torch.arange(h, device=x.device)  # (n, h)
        cols = left[:, None] + torch.where(flip[:, None], w - 1 - j, j)  # (n, w)
        return canvas[torch.arange(n, device=x.device)[:, None, None, None],
                      torch.arange(c, device=x.device)[None, :, None, None],
                      rows[:, None, :, None], cols[:, None, None, :]]

    def _batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every benign client's batch of round t (see the module docstring for the specification)."""
        r, b, g, dev = (self.t - 1) % self.rounds_per_epoch, self.b, self.generator, self.device
        if r == 0 or self.orders is None:  # a new epoch: reshuffle every shard
            longest = max(len(s) for s in self.shards)
            keys = torch.rand((self.k_b, longest), generator=g).to(dev)
            self.orders = [keys[i, : len(s)].argsort() for i, s in enumerate(self.shards)]
        batches = []
        for shard, order in zip(self.shards, self.orders):
            positions = (r * b + torch.arange(b, device=dev)) % len(shard)
            idx = shard[order[positions]]
            batches.append((self.data.x_train[idx], self.data.y_train[idx]))
        if self.data.augment:
            n, p = self.k_b * b, 4
            top = torch.randint(0, 2 * p + 1, (n,), generator=g).to(dev)
            left = torch.randint(0, 2 * p + 1, (n,), generator=g).to(dev)
            flip = torch.randint(0, 2, (n,), generator=g).to(dev).bool()
            for i, (x, y) in enumerate(batches):
                s = slice(i * b, (i + 1) * b)
                batches[i] = (self._augment(x, top[s], left[s], flip[s], p), y)
        return batches

    # ------------------------------------------------------------------ one round
    def step(self) -> None:
        """One communication round t of Algorithm 1."""
        self.t += 1
        lr = self.lr_at(self.t)
        state = self.server.state_dict()

        # Client side (lines 3-9): load θ_{t−1}, one gradient on the own batch, own momentum (Eq. 7).
        for client, m, (x, y) in zip(self.clients, self.momenta, self._batches()):
            client.load_state_dict(state)
            client.zero_grad(set_to_none=True)
            F.cross_entropy(client(x), y).backward()
            g = torch.cat([p.grad.reshape(-1) for p in client.parameters()])
            m.copy_((1 - self.beta) * g + self.beta * m)
        benign = torch.stack(self.momenta)

        # Byzantine clients (line 11): all k_m send the same omniscient attack vector.
        if self.attack == "rop":
            byz = rop(benign, self.prev, self.z, self.lam)
        elif self.attack == "alie":
            byz = alie(benign, self.z)
        else:
            byz = ipm(benign, self.eps)
        x_all = torch.cat([benign, byz.expand(self.k_m, -1)])

        # Server (line 13): m̃_t = AGG(m_1, ..., m_k).
        if self.aggregator == "cc":
            centre = torch.zeros_like(byz) if self.prev is None else self.prev
            agg, n_clipped = centered_clip(x_all, centre, self.tau)
            self.clipped.append(n_clipped)
        elif self.aggregator == "tm":
            agg = trimmed_mean(x_all, self.f)
        else:
            agg = rfa(x_all, self.rfa_iters, self.nu)
        self.prev = agg

        # Line 14: θ_t = θ_{t−1} − η_t m̃_t; BatchNorm statistics: mean over the benign clients.
        with torch.no_grad():
            off = 0
            for p in self.server.parameters():
                p.sub_(lr * agg[off: off + p.numel()].view_as(p))
                off += p.numel()
            client_buffers = [dict(c.named_buffers()) for c in self.clients]
            for name, buf in self.server.named_buffers():
                values = [cb[name] for cb in client_buffers]
                if buf.is_floating_point():
                    buf.copy_(sum(values) / len(values))
                else:  # num_batches_tracked: the same count on every client
                    buf.copy_(values[0])
