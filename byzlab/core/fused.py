"""The ``fused`` gradient engine: one batched pass over all k·b samples, weight gradients per client.

All clients compute their gradients at the same θ_{t−1} (Algorithm 1, line 7), so
everything but the weight gradients is shared arithmetic: the forward pass and the
input-gradient half of the backward pass are **one** pass over the ``n·b`` samples
of the round.  Only the weight gradients must be summed per client:

* ``Linear``: the per-client gradient of W is ``δᵀ a`` over the client's b rows,
  one ``bmm`` over clients ``(n, out, b) @ (n, b, in)``; the bias, a sum of δ.
* ``Conv2d``: the weight-gradient kernel (``aten.convolution_backward`` with only
  the weight output) on each client's slice of the saved input and output
  gradient — the same kernel the per-client loop calls, without its forward and
  input-gradient calls per client.
* ``BatchNorm2d`` with **per-client batch statistics** (each client normalises
  its own b samples, as in :class:`~byzlab.core.engines.LoopEngine`), and
  ``GroupNorm`` (per sample already): their scale and shift enter the pass as
  ``(n, C)`` per-client copies, so autograd returns their gradients per client.

How: while the pass runs, each supported layer's ``forward`` is swapped for one
that uses the parameters detached (autograd computes no weight gradient) and
records its input and output; one ``torch.autograd.grad`` of the sum of the
clients' mean losses with respect to the recorded outputs (and the norm
layers' per-client copies) gives every δ; then the weight gradients above are
written into the rows of one ``(n, d)`` matrix, in the order of
``model.parameters()``.  The numbers are those of the per-client loop up to
floating-point reassociation (``tests/test_reference.py`` holds it to the loop
engine's tolerance).

BatchNorm running statistics follow :mod:`byzlab.core.simulator`: the server keeps the
mean over the benign clients of what each client's update would give,
r̄_t = (1 − μ) r̄_{t−1} + μ · mean_i s_{i,t} (unbiased variance, as PyTorch).

Models with any other layer that holds parameters or buffers are not supported
(:func:`supports` says which).  ``engine="auto"`` takes this engine on CPU where it was
measured faster than the loop (:func:`faster_than_loop_on_cpu`: models without
normalisation layers), else the loop engine.
``channels_last`` (the default for convolutional models on CPU) runs the
convolutions and the layers after them in NHWC, where oneDNN's CPU kernels are faster at
these shapes.  A one-channel input (MNIST) is both NCHW- and NHWC-contiguous and PyTorch takes
it as NCHW: the engine gives it NHWC strides (:func:`nhwc`), and makes every convolution's output
NHWC (in NCHW ``max_pool2d`` alone was 6× slower: cnn, 256 samples, 16 against 2.6 ms).
Clients are taken in passes whose largest layer output stays within
:data:`PASS_BYTES` (the cnn: 4 clients of 32 samples; the mlp: all), as the
memory-bound layers (pooling, ReLU) are faster on data that stays in cache.
"""
from __future__ import annotations

import contextlib
import types

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED = (nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.GroupNorm)
#: the largest layer output one pass may hold: clients are taken in passes of as many as fit
#: (measured on a 2-core AMD EPYC, cnn, 1 thread, CPU time of a round's gradients: passes of
#: 4 clients (conv1's output 5.9 MB) 0.87x the per-client loop, all 20 at once (29 MB) 0.95x,
#: 1 client 0.99x)
PASS_BYTES = 6 * 2 ** 20


def supports(model: nn.Module) -> bool:
    """Whether every parameter and buffer of ``model`` sits in a layer this engine handles."""
    for m in model.modules():
        own = [*m.parameters(recurse=False), *m.buffers(recurse=False)]
        if not own:
            continue
        if type(m) not in SUPPORTED:
            return False
        if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
            return False
    return True


def faster_than_loop_on_cpu(model: nn.Module) -> bool:
    """Whether this engine beat the per-client loop on CPU for such a model (``benchmarks/flop_limit.py``).

    Measured: the cnn and the mlp (no normalisation layers) are faster in one pass; ResNet-20
    (BatchNorm or GroupNorm, 32×32 inputs) is 1.2–1.4× slower than the loop, whose per-client
    activations stay in cache and whose normalisation runs in PyTorch's fused kernels.
    """
    return supports(model) and not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in model.modules())


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """``x`` (N, C, H, W) in NHWC memory order, with strides that say so also when C = 1.

    A one-channel tensor is contiguous in both orders, and ``contiguous(channels_last)``
    returns it unchanged, with NCHW strides: PyTorch then takes it as NCHW, the first
    convolution runs oneDNN's NCHW kernel and its per-client weight gradients copy their
    inputs between the two orders.  The same memory, viewed with NHWC strides, runs both in
    NHWC (cnn, 128 samples, one thread: forward with its NHWC copy 4.6 → 2.0 ms, weight
    gradients of 4 clients 3.1 → 1.5 ms; ``benchmarks/layout_check.py``).
    """
    if x.shape[1] == 1 and x.is_contiguous():
        _, _, h, w = x.shape
        return x.as_strided(x.shape, (h * w, 1, w, 1), x.storage_offset())
    return x.contiguous(memory_format=torch.channels_last)


class _ClientNorm(torch.autograd.Function):
    """x̂ = (x − μ_i) / √(σ²_i + ε) over each client's (b, H, W) of an ``(n, b, C, H, W)`` tensor.

    The backward is BatchNorm's own closed form, ∂x = (g − mean(g) − x̂ · mean(g x̂)) / √(σ² + ε),
    which keeps float32 accuracy (autograd through the mean and variance would subtract
    large terms from each other).
    """

    DIMS = (1, 3, 4)

    @staticmethod
    def forward(ctx, x, eps):
        var, mean = torch.var_mean(x, dim=_ClientNorm.DIMS, correction=0, keepdim=True)
        rstd = torch.rsqrt(var + eps)
        xhat = (x - mean) * rstd
        ctx.save_for_backward(xhat, rstd)
        ctx.mark_non_differentiable(mean, var)
        return xhat, mean, var

    @staticmethod
    def backward(ctx, g, _mean, _var):
        xhat, rstd = ctx.saved_tensors
        dims = _ClientNorm.DIMS
        return (g - g.mean(dims, keepdim=True) - xhat * (g * xhat).mean(dims, keepdim=True)) * rstd, None


class FusedEngine:
    """Client gradients of a round from one forward and one backward pass over all samples."""

    def __init__(self, model: nn.Module, n: int, d: int, device, autocast, channels_last: bool = False,
                 chunk: int | None = None):
        if not supports(model):
            raise ValueError("fused engine: the model has a layer it does not handle (see fused.supports)")
        self.model, self.autocast, self.channels_last = model, autocast, channels_last
        self.chunk = chunk  # clients per pass (None: as many as keep a layer's output within PASS_BYTES)
        self.grads = torch.zeros(n, d, device=device)
        self.all_rows: dict[int, torch.Tensor] = {}  # id(parameter) -> its (n, *shape) view into the rows
        off = 0
        for p in model.parameters():
            self.all_rows[id(p)] = self.grads[:, off: off + p.numel()].view(n, *p.shape)
            off += p.numel()
        self.layers = [m for m in model.modules() if isinstance(m, SUPPORTED)]

    # ------------------------------------------------------------------ the pass
    def __call__(self, x, y, n: int, n_benign: int):
        b = x.shape[0] // n
        self.b = b
        self.stats: dict[nn.Module, list] = {}
        if self.channels_last and x.dim() == 4:
            x = nhwc(x)
        if self.chunk is None:
            self.chunk = self._clients_per_pass(x[:1], n, b)
        losses = torch.cat([self._pass(x[lo * b: hi * b], y[lo * b: hi * b], lo, hi)
                            for lo, hi in ((lo, min(n, lo + self.chunk)) for lo in range(0, n, self.chunk))])
        with torch.no_grad():
            self._update_running_stats(n_benign)
        return self.grads[:n], losses

    def _clients_per_pass(self, x1: torch.Tensor, n: int, b: int) -> int:
        """Clients per pass such that the largest layer output of a pass stays within ``PASS_BYTES``."""
        largest = [0]

        def hook(module, args, out):
            if isinstance(out, torch.Tensor):
                largest[0] = max(largest[0], out.numel() * out.element_size())

        handles = [m.register_forward_hook(hook) for m in self.model.modules() if m is not self.model]
        try:
            with torch.no_grad(), self.autocast():
                self.model.eval()  # no BatchNorm statistics update from this probe
                self.model(x1)
        finally:
            self.model.train()
            for h in handles:
                h.remove()
        return max(1, min(n, PASS_BYTES // max(1, largest[0] * b)))

    def _pass(self, x, y, lo: int, hi: int) -> torch.Tensor:
        """Forward and backward over clients ``lo .. hi-1``; their gradients into rows ``lo .. hi-1``."""
        n, b = hi - lo, self.b
        self.n = n
        self.rows = {pid: r[lo:hi] for pid, r in self.all_rows.items()}
        self.records: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
        self.copies: dict[int, torch.Tensor] = {}  # id(norm parameter) -> its (n, C) per-client copy
        with self._swapped(), self.autocast():
            out = self.model(x)
        if out.dtype in (torch.bfloat16, torch.float16):  # autocast: the loss in float32, as the loop's
            out = out.float()
        losses = F.cross_entropy(out, y, reduction="none").view(n, b).mean(1)
        outs = [r[2] for r in self.records]
        deltas = torch.autograd.grad(losses.sum(), outs + list(self.copies.values()), allow_unused=True)
        written: set[int] = set()
        with torch.no_grad(), self.autocast():
            for (m, a, o), delta in zip(self.records, deltas[: len(outs)]):
                if delta is not None:
                    self._weight_grads(m, a, delta, written)
            for pid, g in zip(self.copies, deltas[len(outs):]):
                self._write(pid, torch.zeros_like(self.rows[pid]) if g is None else g, written)
        for pid, row in self.rows.items():  # parameters no recorded layer reached: zero gradient
            if pid not in written:
                row.zero_()
        self.records, self.copies = [], {}
        return losses.detach().float()

    def _write(self, pid: int, g: torch.Tensor, written: set) -> None:
        if pid in written:  # a layer called more than once: its contributions add up
            self.rows[pid].add_(g.view_as(self.rows[pid]))
        else:
            self.rows[pid].copy_(g.view_as(self.rows[pid]))
            written.add(pid)

    def _direct_target(self, pid: int, dtype: torch.dtype, written: set) -> torch.Tensor | None:
        """The rows of parameter ``pid`` to compute its gradients into, when they can take them as they are.

        That is when this is the parameter's first contribution of the pass and the rows have the
        gradients' dtype (not under autocast); the parameter then counts as written.  A ``bmm``
        written into the rows instead of a temporary copied there, one thread: the mlp's first layer
        0.85–0.95 -> 0.77–0.80 ms a round, the cnn's fc1 1.35–1.77 -> 1.13–1.20 ms a pass
        (``benchmarks/layout_check.py``, 2026-12-04, 2-core AMD EPYC); the same numbers bit for bit."""
        if pid in written or self.rows[pid].dtype != dtype:
            return None
        written.add(pid)
        return self.rows[pid]

    def _weight_grads(self, m: nn.Module, a: torch.Tensor, delta: torch.Tensor, written: set) -> None:
        n, b = self.n, self.b
        a = a.to(delta.dtype)  # under autocast the layer ran in the lower precision
        if isinstance(m, nn.Linear):
            dv = delta.reshape(n, -1, delta.shape[-1])
            dw, av = dv.transpose(1, 2), a.reshape(n, -1, a.shape[-1])
            direct = self._direct_target(id(m.weight), delta.dtype, written)
            if direct is not None:  # the GEMMs write into the rows (no (n, out, in) temporary and copy)
                torch.bmm(dw, av, out=direct)
            else:
                self._write(id(m.weight), torch.bmm(dw, av), written)
            if m.bias is not None:
                self._write(id(m.bias), dv.sum(1), written)
            return
        # Conv2d: the weight-gradient kernel on each client's slice
        w = m.weight
        gw = self._direct_target(id(w), delta.dtype, written)
        direct = gw is not None
        if not direct:
            gw = torch.empty(n, *w.shape, device=w.device, dtype=delta.dtype)
        for i in range(n):
            gw[i] = torch.ops.aten.convolution_backward(
                delta[i * b:(i + 1) * b], a[i * b:(i + 1) * b], w.detach().to(delta.dtype), None, m.stride,
                m.padding, m.dilation, False, [0, 0], m.groups, [False, True, False])[1]
        if not direct:
            self._write(id(w), gw, written)
        if m.bias is not None:
            self._write(id(m.bias), delta.unflatten(0, (n, b)).sum((1, 3, 4)), written)

    # ------------------------------------------------------------------ swapped layers
    @contextlib.contextmanager
    def _swapped(self):
        forwards = {nn.Linear: self._linear, nn.Conv2d: self._conv, nn.BatchNorm2d: self._batch_norm,
                    nn.GroupNorm: self._group_norm}
        for m in self.layers:
            m.forward = types.MethodType(forwards[type(m)], m)
        try:
            yield
        finally:
            for m in self.layers:
                del m.forward

    def _record(self, m: nn.Module, a: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if not out.requires_grad:  # the first layer: its input is data
            out.requires_grad_()
        self.records.append((m, a.detach(), out))
        return out

    @staticmethod
    def _detached(p):
        return None if p is None else p.detach()

    def _linear(self, m: nn.Linear, a: torch.Tensor) -> torch.Tensor:
        return self._record(m, a, F.linear(a, m.weight.detach(), self._detached(m.bias)))

    def _conv(self, m: nn.Conv2d, a: torch.Tensor) -> torch.Tensor:
        out = m._conv_forward(a, m.weight.detach(), self._detached(m.bias))
        if self.channels_last and not out.is_contiguous(memory_format=torch.channels_last):
            out = out.contiguous(memory_format=torch.channels_last)
        return self._record(m, a, out)

    def _per_client_affine(self, m: nn.Module, xhat: torch.Tensor) -> torch.Tensor:
        """``xhat · γ_i + β_i`` with ``(n, C)`` per-client copies of the layer's scale and shift."""
        if m.weight is None:
            return xhat
        n, c = self.n, xhat.shape[1]
        shape = (n, 1, c) + (1,) * (xhat.dim() - 2)
        w, bias = (self.copies.setdefault(id(p), p.detach().unsqueeze(0).repeat(n, 1).requires_grad_())
                   for p in (m.weight, m.bias))
        return torch.addcmul(bias.view(shape), xhat.unflatten(0, (n, -1)), w.view(shape)).flatten(0, 1)

    def _batch_norm(self, m: nn.BatchNorm2d, a: torch.Tensor) -> torch.Tensor:
        """Batch normalisation with each client's own batch statistics."""
        n = self.n
        av = a.unflatten(0, (n, -1))  # (n, b, C, H, W)
        xhat, mean, var = _ClientNorm.apply(av, m.eps)
        if m.track_running_stats and m.running_mean is not None:
            count = av.shape[1] * av.shape[3] * av.shape[4]
            self.stats.setdefault(m, []).append((mean.view(n, -1), var.view(n, -1), count))
        return self._per_client_affine(m, xhat.flatten(0, 1))

    def _group_norm(self, m: nn.GroupNorm, a: torch.Tensor) -> torch.Tensor:
        return self._per_client_affine(m, F.group_norm(a, m.num_groups, None, None, m.eps))

    def _update_running_stats(self, n_benign: int) -> None:
        """r̄ ← (1 − μ) r̄ + μ · mean over benign clients of their batch statistics (unbiased variance)."""
        for m, parts in self.stats.items():
            mean, var = (torch.cat([p[i] for p in parts])[:n_benign] for i in (0, 1))
            count = parts[0][2]
            m.num_batches_tracked.add_(1)
            mu = m.momentum if m.momentum is not None else 1.0 / float(m.num_batches_tracked)
            m.running_mean.lerp_(mean.mean(0).to(m.running_mean.dtype), mu)
            m.running_var.lerp_((var * (count / max(count - 1, 1))).mean(0).to(m.running_var.dtype), mu)
        self.stats = {}
