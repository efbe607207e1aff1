"""Models of the paper's experiments (Section VI).

* ``cnn`` — the 2-layer CNN for MNIST / Fashion-MNIST: conv(20, 5×5) → ReLU →
  maxpool 2 → conv(50, 5×5) → ReLU → maxpool 2 → fc 500 → ReLU → fc C
  (431,080 parameters for 1×28×28 inputs and 10 classes).
* ``resnet20`` — the CIFAR ResNet-20 of He et al. (2016): 3 stages of 16/32/64
  channels with 3 basic blocks each, 1×1 projection shortcuts where the shape
  changes; 272,474 parameters for 10 classes, as in the Centered Clipping
  authors' code.
* ``resnet9`` — the ResNet-9 used for fast CIFAR training (prep 64 → 128 + res →
  256 → 512 + res → global max-pool → fc), for CIFAR-100.
* ``mlp`` — a small 2-layer perceptron for the embedded 8×8 ``digits`` set.

The ResNets take ``norm="bn"`` (BatchNorm) or ``norm="gn"`` (GroupNorm with 8
groups; no running statistics).  During client gradient computation models are
in train mode, so BatchNorm uses each client's own batch statistics (see
:mod:`byzlab.core.simulator` for how the server's running statistics are kept).

All models are plain ``nn.Module`` without in-place activations, so per-client
gradients can be computed with ``torch.func.vmap(grad(functional_call(...)))``.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .errors import ConfigError

MODELS: dict[str, str] = {
    "cnn": "2-layer CNN of the paper for MNIST/FMNIST (431,080 parameters at 1x28x28, 10 classes)",
    "resnet20": "CIFAR ResNet-20, 16/32/64 channels x 3 blocks (272,474 parameters, 10 classes); norm bn|gn",
    "resnet9": "ResNet-9 for CIFAR-100 (prep-128-256-512, two residual blocks); norm bn|gn",
    "mlp": "small perceptron for the 8x8 digits set: fc 64 -> ReLU -> fc C",
}

NORMS = ("bn", "gn")
GN_GROUPS = 8


def _norm(norm: str, c: int) -> nn.Module:
    return nn.BatchNorm2d(c) if norm == "bn" else nn.GroupNorm(GN_GROUPS, c)


class CNN(nn.Module):
    def __init__(self, in_ch: int, h: int, w: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        fh, fw = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(50 * fh * fw, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x):
        # ReLU after the pooling: max and ReLU commute (the same values, and the gradient reaches the
        # same element), and the ReLU and its backward then touch a quarter of the elements
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, hidden: int = 64):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


class BasicBlock(nn.Module):
    """3×3 conv pair; where the shape changes, a 1×1 conv + norm projection shortcut (option B)."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = _norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = _norm(norm, c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(norm, c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, in_ch: int, num_classes: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 16, 3, 1, 1, bias=False)
        self.bn1 = _norm(norm, 16)
        blocks, c_in = [], 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(BasicBlock(c_in, c_out, stride if i == 0 else 1, norm))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _conv_bn(c_in: int, c_out: int, norm: str, pool: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), _norm(norm, c_out), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, c: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c, c, norm), _conv_bn(c, c, norm))

    def forward(self, x):
        return x + self.body(x)


class ResNet9(nn.Module):
    def __init__(self, in_ch: int, num_classes: int, norm: str):
        super().__init__()
        self.net = nn.Sequential(
            _conv_bn(in_ch, 64, norm),
            _conv_bn(64, 128, norm, pool=True), _Residual(128, norm),
            _conv_bn(128, 256, norm, pool=True),
            _conv_bn(256, 512, norm, pool=True), _Residual(512, norm),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.net(x))


def build_model(name: str, num_classes: int, input_shape: tuple, norm: str = "bn") -> nn.Module:
    """The model ``name`` for inputs of shape ``(C, H, W)`` and ``num_classes`` outputs."""
    if name not in MODELS:
        raise ConfigError(f"model: unknown {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    if norm not in NORMS:
        raise ConfigError(f"norm: must be one of {', '.join(NORMS)}; got {norm!r}")
    c, h, w = input_shape
    if name == "cnn":
        if h < 16 or w < 16:
            raise ConfigError(f"model 'cnn' needs inputs of at least 16x16 pixels, got {c}x{h}x{w}; use model 'mlp'")
        return CNN(c, h, w, num_classes)
    if name == "mlp":
        return MLP(c * h * w, num_classes)
    if name == "resnet20":
        return ResNet20(c, num_classes, norm)
    return ResNet9(c, num_classes, norm)


def sparse_mask(model: nn.Module) -> torch.Tensor:
    """Boolean mask over the flat parameter vector of the coordinates ROP-S attacks (Eq. 20).

    Marked: every parameter of the first and of the last parametrised layer
    (first Conv/Linear, last Linear/Conv), every normalisation parameter
    (BatchNorm, GroupNorm, LayerNorm) and every bias.  The order is that of
    ``model.parameters()`` (as in ``parameters_to_vector`` and the simulator's θ).
    For ResNet-20 with BatchNorm this is about 1 % of the parameters (first conv,
    fc and every BatchNorm weight and bias); the paper quotes ≈ 0.5 %.
    """
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    norms = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
    marked: set[int] = set()
    for m in (layers[0], layers[-1]) if layers else ():
        marked.update(id(p) for p in m.parameters(recurse=False))
    for m in model.modules():
        if isinstance(m, norms):
            marked.update(id(p) for p in m.parameters(recurse=False))
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            marked.add(id(p))
    return torch.cat([torch.full((p.numel(),), id(p) in marked, dtype=torch.bool) for p in model.parameters()])
