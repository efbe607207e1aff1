"""The per-client baseline of the speed benchmark: one model copy per client.

This is the design of the paper authors' library, written minimally for
comparison (it is not their code): every client holds a deep copy of the model,
loads the server weights each round, does one forward+backward on its own batch
and keeps its own momentum m_i ← β m_i + (1 − β) g_i (Eq. 7); the momenta are
flattened and stacked, the Byzantine clients send ROP (Algorithm 3) and the
server aggregates with Centered Clipping (Eq. 6, one iteration) and steps.

Data are ready tensors on the device (the library decodes images per sample,
which this baseline does not copy), so the comparison isolates the cost of the
per-client structure itself.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from byzlab.data import Dataset, augment_batch


class PerClientLoop:
    """One round of federated training with a model copy per client (benign clients compute)."""

    def __init__(self, model: torch.nn.Module, data: Dataset, *, k: int = 25, k_m: int = 5, b: int = 32,
                 beta: float = 0.9, lr: float = 0.1, tau: float = 1.0, z: float = 1.0, lam: float = 0.9,
                 seed: int = 0):
        self.device = data.x_train.device
        self.server = model.to(self.device).train()
        self.clients = [copy.deepcopy(self.server) for _ in range(k - k_m)]
        self.data, self.k, self.k_m, self.b = data, k, k_m, b
        self.beta, self.lr, self.tau, self.z, self.lam = beta, lr, tau, z, lam
        d = sum(p.numel() for p in self.server.parameters())
        self.momenta = [torch.zeros(d, device=self.device) for _ in self.clients]
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        n = data.y_train.shape[0]
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(self.device)
        self.shards = list(perm.chunk(k))
        self.fill = torch.as_tensor(data.pad_value, dtype=data.x_train.dtype).to(self.device)
        self.prev: torch.Tensor | None = None

    def step(self) -> None:
        state = self.server.state_dict()
        for client, shard, m in zip(self.clients, self.shards, self.momenta):
            client.load_state_dict(state)
            client.zero_grad(set_to_none=True)
            idx = shard[torch.randint(shard.numel(), (self.b,), generator=self.generator, device=self.device)]
            x, y = self.data.x_train[idx], self.data.y_train[idx]
            if self.data.augment:
                x = augment_batch(x, self.generator, fill=self.fill)
            F.cross_entropy(client(x), y).backward()
            g = torch.cat([p.grad.reshape(-1) for p in client.parameters()])
            m.mul_(self.beta).add_(g, alpha=1 - self.beta)
        benign = torch.stack(self.momenta)

        # ROP (Algorithm 3): m̃_{t-1} + z · p̂, p̂ ⟂ r = λ m̃_{t-1} + (1 − λ) m̄_t
        mean = benign.mean(0)
        prev = mean if self.prev is None else self.prev
        r = self.lam * prev + (1 - self.lam) * mean
        p = torch.ones_like(r)
        p = p - (p @ r) / (r @ r) * r
        byz = prev + self.z * p / p.norm()
        x_all = torch.cat([benign, byz.expand(self.k_m, -1)])

        # Centered Clipping (Eq. 6), centre m̃_{t-1} (zero at t = 1)
        centre = torch.zeros_like(mean) if self.prev is None else self.prev
        diff = x_all - centre
        scale = (self.tau / diff.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
        agg = centre + (diff * scale).mean(0)
        self.prev = agg

        theta = parameters_to_vector(self.server.parameters()) - self.lr * agg
        vector_to_parameters(theta, self.server.parameters())
