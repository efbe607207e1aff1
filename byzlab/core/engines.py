"""Client gradients of one round (Algorithm 1, line 7) for all clients at once, and precision.

Three engines give the same numbers up to floating-point reassociation (see
:mod:`byzlab.core.simulator`): :class:`LoopEngine`, one model and a Python loop over
clients writing into rows of one ``(n, d)`` matrix; :class:`VmapEngine`, one
``torch.func.vmap(grad(...))`` call over the client dimension (the CUDA default;
:func:`client_grad_fn` is shared with :class:`~byzlab.core.batched.BatchedSimulation`);
and :class:`~byzlab.core.fused.FusedEngine`, one forward and one backward pass over all
k·b samples with per-client weight gradients (the CPU default where it is faster).  :func:`choose_engine` resolves ``engine="auto"``, :func:`make_engine`
builds one; :func:`autocast_for` and :func:`precision_scope` apply a run's ``precision``, :func:`threads_scope`
its ``threads``.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .fused import FusedEngine, faster_than_loop_on_cpu, supports


class LoopEngine:
    """Per-client forward/backward in a loop, gradients written into rows of one matrix."""

    def __init__(self, model, n: int, d: int, device, autocast):
        self.model = model
        self.params = list(model.parameters())
        self.grads = torch.zeros(n, d, device=device)
        self.views = []
        for i in range(n):
            row, off, vs = self.grads[i], 0, []
            for p in self.params:
                vs.append(row[off: off + p.numel()].view_as(p))
                off += p.numel()
            self.views.append(vs)
        self.buffers = [b for b in model.buffers() if b.is_floating_point()]
        self.counters = [b for b in model.buffers() if not b.is_floating_point()]
        self.autocast = autocast

    def __call__(self, x, y, n: int, n_benign: int):
        b = x.shape[0] // n
        self.grads.zero_()
        losses = []
        snapshot = [buf.clone() for buf in self.buffers]
        counts = [c.clone() for c in self.counters]
        acc = [torch.zeros_like(buf) for buf in self.buffers]
        for i in range(n):
            for p, v in zip(self.params, self.views[i]):
                p.grad = v
            for buf, s in zip(self.buffers, snapshot):
                buf.copy_(s)
            with self.autocast():
                loss = F.cross_entropy(self.model(x[i * b: (i + 1) * b]), y[i * b: (i + 1) * b])
            loss.backward()
            losses.append(loss.detach())
            if i < n_benign:
                for a, buf in zip(acc, self.buffers):
                    a.add_(buf)
        for buf, a in zip(self.buffers, acc):
            buf.copy_(a / n_benign)
        for c, s in zip(self.counters, counts):
            c.copy_(s + 1)
        for p in self.params:
            p.grad = None
        return self.grads[:n], torch.stack(losses).float()


def client_grad_fn(model: torch.nn.Module, autocast: Callable):
    """``fn(theta, buffers, x, y) -> (grads (n, d), losses (n,))`` over a leading client dimension.

    ``theta`` is the flat parameter vector shared by all clients (in_dims=None);
    ``buffers`` (per-client BatchNorm statistics), ``x`` ``(n, b, ...)`` and ``y``
    ``(n, b)`` are batched.  Gradients are taken with respect to the flat vector,
    so they come out as rows of an ``(n, d)`` matrix with no copy.
    """
    from torch.func import functional_call, grad, vmap

    _batchnorm_input_in_fp32(model)
    named = list(model.named_parameters())
    names = [n for n, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]

    def loss_fn(theta, buffers, x, y):
        params = {n: c.view(s) for n, c, s in zip(names, theta.split(sizes), shapes)}
        with autocast():
            out = functional_call(model, (params, buffers), (x,))
        loss = F.cross_entropy(out.float(), y)
        return loss, loss

    return vmap(grad(loss_fn, has_aux=True), in_dims=(None, 0, 0, 0))


def _upcast_input(module, args):
    x = args[0]
    if x.dtype not in (torch.bfloat16, torch.float16):
        return None
    ref = module.weight if module.weight is not None else module.running_mean
    return (x.to(ref.dtype if ref is not None else torch.float32), *args[1:])


def _batchnorm_input_in_fp32(model: torch.nn.Module) -> None:
    """Give every BatchNorm layer of ``model`` its own precision's input (a forward pre-hook; once per model).

    Under bf16 autocast a BatchNorm layer receives the bf16 output of a convolution beside its fp32
    weights and statistics; the plain module accepts that mix, but BatchNorm's batching rule under
    ``torch.func.vmap`` does not ("expected scalar type BFloat16 but found Float").  The input is cast
    to the layer's own dtype (fp32; a float64 model's stays float64): exact, and BatchNorm computes
    its statistics in that precision either way; its output stays so until the next autocast layer
    casts it.  Input that is not bf16 or fp16 passes unchanged."""
    if getattr(model, "_byzlab_bn_fp32", False):
        return
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.register_forward_pre_hook(_upcast_input)
    model._byzlab_bn_fp32 = True


class VmapEngine:
    """All clients in one ``torch.func.vmap(grad(...))`` call (per-client BatchNorm statistics)."""

    def __init__(self, model, theta, autocast):
        self.theta = theta
        self.buffers = dict(model.named_buffers())
        self.fn = client_grad_fn(model, autocast)

    def __call__(self, x, y, n: int, n_benign: int):
        bufs = {k: v.unsqueeze(0).repeat(n, *([1] * v.dim())) for k, v in self.buffers.items()}
        g, losses = self.fn(self.theta, bufs, x.view(n, x.shape[0] // n, *x.shape[1:]), y.view(n, -1))
        for k, v in self.buffers.items():  # server statistics: mean over the benign clients
            v.copy_(bufs[k][:n_benign].mean(0) if v.is_floating_point() else bufs[k][0])
        return g, losses


def choose_engine(engine: str, model: torch.nn.Module, device: torch.device) -> str:
    """``engine``, or for ``auto`` the fastest measured on the device (``benchmarks/flop_limit.py``).

    CUDA: ``vmap``.  CPU: ``fused`` where it was measured faster than the loop
    (:func:`byzlab.core.fused.faster_than_loop_on_cpu`: the cnn and the mlp), else ``loop``.  ``fused`` asked for a model it
    does not handle is a :class:`~byzlab.core.errors.ConfigError`.
    """
    if engine == "fused" and not supports(model):
        raise ConfigError(f"engine: 'fused' does not handle the layers of {type(model).__name__}; "
                          "use auto, loop or vmap")
    if engine != "auto":
        return engine
    if device.type == "cuda":
        return "vmap"
    return "fused" if faster_than_loop_on_cpu(model) else "loop"


def make_engine(engine: str, model: torch.nn.Module, theta: torch.Tensor, n: int, device: torch.device,
                autocast: Callable):
    """The engine object named ``engine`` (one of ``loop``, ``vmap``, ``fused``) for ``model``."""
    if engine == "vmap":
        return VmapEngine(model, theta, autocast)
    if engine == "fused":
        return FusedEngine(model, n, theta.numel(), device, autocast, channels_last=device.type == "cpu")
    return LoopEngine(model, n, theta.numel(), device, autocast)


# --------------------------------------------------------------------------- precision
def autocast_for(precision: str, device_type: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of the context that runs the client forward pass: bf16 autocast, or nothing."""
    if precision == "bf16":
        return lambda: torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext


@contextlib.contextmanager
def threads_scope(threads: int) -> Iterator[None]:
    """Within the block, torch computes with ``threads`` threads; the process's setting is restored on exit."""
    saved = torch.get_num_threads()
    if saved != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != saved:
            torch.set_num_threads(saved)


@contextlib.contextmanager
def precision_scope(precision: str) -> Iterator[None]:
    """Within the block, TensorFloat-32 matmuls and convolutions (CUDA) are on for ``tf32`` and off otherwise.

    PyTorch's own default lets cuDNN convolutions use TF32 (a 10-bit mantissa) on Ampere and later
    GPUs, so a plain "fp32" cnn round on an H200 would run its convolutions in TF32 (a first CPU-CUDA
    comparison drifted by 8e-4 of max |θ| after one round, TF32-sized); byzlab's ``fp32`` means fp32,
    and ``bf16`` keeps its non-autocast operations in fp32 as well.  The process-wide flags are
    restored on exit, so a run never changes later runs in the same process.  No effect on CPU.
    """
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
