"""The gradient engines against a plain per-client computation, and the engine choice.

The reference here is the textbook one: a deep copy of the model per client, its
cross-entropy on its own b samples, ``torch.autograd.grad`` with respect to its
parameters.  It shares nothing with the engines but the model builder.  Float64,
so every engine must agree to reassociation error (1e-10 relative); the ``vmap``
engine evaluates its loss on float32 logits and gets 1e-6 (see test_reference.py).
"""
from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from byzlab import RunConfig, Simulation
from byzlab.core.data import Dataset
from byzlab.core.engines import choose_engine
from byzlab.core.errors import ConfigError
from byzlab.core.fused import nhwc, supports

RTOL = {"loop": 1e-10, "vmap": 1e-6, "fused": 1e-10}
ENGINES = list(RTOL)


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _data(shape, n=120, classes=10) -> Dataset:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    return Dataset("synthetic", x, y, x[:10], y[:10], classes, augment=False, default_model="cnn")


MODELS = {  # model, norm, input shape
    "cnn": ("cnn", "bn", (1, 20, 20)),
    "mlp": ("mlp", "bn", (1, 8, 8)),
    "resnet20-bn": ("resnet20", "bn", (3, 8, 8)),
    "resnet20-gn": ("resnet20", "gn", (3, 8, 8)),
}


def _plain_per_client(model: nn.Module, x, y, n: int):
    """Each client's gradient and loss with its own model copy (train mode: its own batch statistics)."""
    b = x.shape[0] // n
    grads, losses = [], []
    for i in range(n):
        m = copy.deepcopy(model).train()
        loss = F.cross_entropy(m(x[i * b:(i + 1) * b]), y[i * b:(i + 1) * b])
        g = torch.autograd.grad(loss, list(m.parameters()))
        grads.append(torch.cat([t.reshape(-1) for t in g]))
        losses.append(loss.detach())
    return torch.stack(grads), torch.stack(losses)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", list(MODELS))
def test_engine_gradients_and_losses_match_per_client_copies(name, engine):
    model, norm, shape = MODELS[name]
    sim = Simulation(dataset=_data(shape), model=model, norm=norm, k=6, k_m=2, b=5, epochs=1, seed=0,
                     device="cpu", engine=engine, attack="alie", aggregator="tm")
    x, y = sim.sample(1)
    server = copy.deepcopy(sim.model)
    want_g, want_loss = _plain_per_client(server, x, y, sim.n_compute)
    got_g, got_loss = sim.engine(x, y, sim.n_compute, sim.k_b)
    tol = RTOL[engine]
    assert got_g.shape == want_g.shape
    assert float((got_g - want_g).abs().max()) <= tol * float(want_g.abs().max())
    # the per-client losses (the round-loss diagnostic), reported in float32 by every engine
    assert torch.allclose(got_loss.double(), want_loss, rtol=1e-6, atol=0)


def test_fused_engine_in_chunks_of_clients_matches_per_client_copies():
    """Clients in passes of 2 (BatchNorm statistics still per client, server mean over all benign)."""
    from byzlab.core.fused import FusedEngine

    model, norm, shape = MODELS["resnet20-bn"]
    sims = [Simulation(dataset=_data(shape), model=model, norm=norm, k=7, k_m=2, b=3, epochs=1, seed=0,
                       device="cpu", engine="fused", attack="alie", aggregator="tm") for _ in range(2)]
    chunked = FusedEngine(sims[1].model, sims[1].n_compute, sims[1].d, sims[1].device, sims[1].engine.autocast,
                          chunk=2)
    x, y = sims[0].sample(1)
    want_g, want_loss = _plain_per_client(copy.deepcopy(sims[0].model), x, y, sims[0].n_compute)
    whole = sims[0].engine(x, y, sims[0].n_compute, sims[0].k_b)
    parts = chunked(x, y, sims[1].n_compute, sims[1].k_b)
    for g, loss in (whole, parts):
        assert float((g - want_g).abs().max()) <= 1e-10 * float(want_g.abs().max())
        assert torch.allclose(loss.double(), want_loss, rtol=1e-6, atol=0)
    for (name, a), (_, b) in zip(sims[0].model.named_buffers(), sims[1].model.named_buffers()):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), name


class _Shared(nn.Module):
    """A convolution and a linear layer each applied twice (their gradients are sums of two parts)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.lin = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.conv(torch.relu(self.conv(x))))
        h = F.adaptive_avg_pool2d(h, 2).flatten(1)
        return self.head(torch.tanh(self.lin(torch.tanh(self.lin(h)))))


def test_fused_engine_adds_the_parts_of_a_layer_called_twice():
    """A layer's first contribution is written into the gradient rows, later ones added: both paths."""
    from byzlab.core.fused import FusedEngine

    torch.manual_seed(0)
    model, n, b = _Shared(), 4, 3
    d = sum(p.numel() for p in model.parameters())
    engine = FusedEngine(model, n, d, torch.device("cpu"), contextlib.nullcontext, channels_last=True)
    g = torch.Generator().manual_seed(1)
    for _ in range(2):  # twice: rows left from a first call must not leak into the second
        x, y = torch.randn(n * b, 2, 6, 6, generator=g), torch.randint(0, 3, (n * b,), generator=g)
        want_g, want_loss = _plain_per_client(copy.deepcopy(model), x, y, n)
        got_g, got_loss = engine(x, y, n, n)
        assert float((got_g - want_g).abs().max()) <= 1e-10 * float(want_g.abs().max())
        assert torch.allclose(got_loss.double(), want_loss, rtol=1e-6, atol=0)


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_server_batchnorm_statistics_are_the_benign_clients_mean(engine):
    """r̄_t = (1 − μ) r̄_{t−1} + μ · mean over benign clients of each client's batch statistics."""
    model, norm, shape = MODELS["resnet20-bn"]
    sim = Simulation(dataset=_data(shape), model=model, norm=norm, k=6, k_m=2, b=5, epochs=1, seed=0,
                     device="cpu", engine=engine, attack="alie", aggregator="tm")
    x, y = sim.sample(1)
    before = copy.deepcopy(sim.model)
    sim.engine(x, y, sim.n_compute, sim.k_b)
    # hand computation for the first layer: per-client mean and unbiased variance of conv1's output
    h = before.conv1(x).detach().unflatten(0, (sim.n_compute, -1))[: sim.k_b]
    mean = h.mean(dim=(1, 3, 4)).mean(0)
    var = h.var(dim=(1, 3, 4), correction=1).mean(0)
    mu = before.bn1.momentum
    tol = 1e-10 if engine != "vmap" else 1e-6
    assert torch.allclose(sim.model.bn1.running_mean, (1 - mu) * before.bn1.running_mean + mu * mean, atol=tol)
    assert torch.allclose(sim.model.bn1.running_var, (1 - mu) * before.bn1.running_var + mu * var, atol=tol)
    assert int(sim.model.bn1.num_batches_tracked) == int(before.bn1.num_batches_tracked) + 1


class _WithLayerNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.ln = nn.LayerNorm(4)

    def forward(self, x):
        return self.ln(self.fc(x))


def test_engine_choice():
    cpu = torch.device("cpu")
    cnn = Simulation(dataset=_data((1, 20, 20)), model="cnn", k=4, k_m=1, b=2, epochs=1, device="cpu")
    assert cnn.engine_name == "fused"  # auto on CPU: fused where it is faster (no normalisation layers)
    resnet = Simulation(dataset=_data((3, 8, 8)), model="resnet20", k=4, k_m=1, b=2, epochs=1, device="cpu")
    assert resnet.engine_name == "loop" and supports(resnet.model)
    assert choose_engine("auto", cnn.model, torch.device("cuda")) == "vmap"
    assert choose_engine("loop", cnn.model, cpu) == "loop"
    other = _WithLayerNorm()
    assert not supports(other) and supports(nn.Sequential(nn.Linear(3, 2), nn.ReLU()))
    assert choose_engine("auto", other, cpu) == "loop"
    with pytest.raises(ConfigError, match=r"^engine: 'fused' does not handle the layers of _WithLayerNorm"):
        choose_engine("fused", other, cpu)
    with pytest.raises(ConfigError, match=r"^engine: unknown 'jax'; choose one of: auto, fused, loop, vmap"):
        RunConfig.make(engine="jax")


@pytest.mark.parametrize("channels", [1, 3])
def test_nhwc_keeps_the_values_and_makes_a_convolution_run_in_nhwc(channels):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, channels, 9, 9, generator=g)
    w = torch.randn(4, channels, 3, 3, generator=g)
    for part in (x, x[2:5]):  # a slice: a storage offset
        y = nhwc(part)
        assert torch.equal(y, part) and y.is_contiguous(memory_format=torch.channels_last)
        assert y.stride()[1] == 1  # the channel is the fastest dimension, also for one channel
        out = F.conv2d(y, w)
        assert out.stride()[1] == 1  # the convolution ran in NHWC: its 4-channel output is NHWC
        torch.testing.assert_close(out, F.conv2d(part.contiguous(), w), rtol=1e-5, atol=1e-5)
    # the plain conversion keeps a one-channel tensor's NCHW strides: the case nhwc exists for
    plain = F.conv2d(x.contiguous(memory_format=torch.channels_last), w)
    assert (plain.stride()[1] == 1) == (channels > 1)
