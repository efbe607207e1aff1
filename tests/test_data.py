"""byzlab.core.data: embedded and torchvision data sets, client partitions, batched augmentation."""
import pickle
import struct
from urllib.error import URLError

import numpy as np
import pytest
import torch

from byzlab.core.data import (DATASET_SPECS, DATASETS, Dataset, augment_batch, cached_dataset, clear_dataset_cache,
                         load_dataset)
from byzlab.core.partition import class_counts, partition

MNIST_NORM = (0.1307, 0.3081)
FMNIST_NORM = (0.2860, 0.3530)
CIFAR10_NORM = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_NORM = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))


# --------------------------------------------------------------------------- embedded data sets
@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


def test_mnist5k_shapes_and_normalisation(mnist5k):
    d = mnist5k
    assert d.name == "mnist5k" and d.num_classes == 10 and d.default_model == "cnn" and not d.augment
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.y_train.shape == (4000,) and d.y_test.shape == (1000,)
    assert d.input_shape == (1, 28, 28)
    assert abs(d.x_train.mean().item()) < 0.1
    assert abs(d.x_train.std().item() - 1.0) < 0.1
    # the black background maps to -mean/std exactly
    assert d.x_train.min().item() == pytest.approx(-MNIST_NORM[0] / MNIST_NORM[1], abs=1e-5)


def test_mnist5k_split_is_stratified_and_fixed(mnist5k):
    d = mnist5k
    test_counts = torch.bincount(d.y_test, minlength=10).numpy()
    train_counts = torch.bincount(d.y_train, minlength=10).numpy()
    total = test_counts + train_counts
    assert total.sum() == 5000 and set(d.y_test.tolist()) == set(range(10))
    expected = total * 1000 / 5000
    assert np.all(np.abs(test_counts - expected) <= 1)
    again = load_dataset("mnist5k")
    assert torch.equal(again.x_train, d.x_train) and torch.equal(again.y_test, d.y_test)


def test_loads_return_fresh_tensors(mnist5k):
    a = load_dataset("mnist5k")
    a.x_train.zero_()
    a.y_train.fill_(3)
    b = load_dataset("mnist5k")
    assert torch.equal(b.x_train, mnist5k.x_train) and torch.equal(b.y_train, mnist5k.y_train)
    assert b.x_train.abs().sum() > 0


def test_digits():
    d = load_dataset("digits")
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_test.shape == (360, 1, 8, 8)
    assert d.num_classes == 10 and d.default_model == "mlp" and not d.augment
    assert set(d.y_train.tolist()) == set(range(10)) and set(d.y_test.tolist()) == set(range(10))
    assert abs(d.x_train.mean().item()) < 1e-4 and abs(d.x_train.std().item() - 1) < 1e-3
    moved = d.to("cpu")
    assert isinstance(moved, Dataset) and moved.input_shape == (1, 8, 8) and torch.equal(moved.y_test, d.y_test)


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
def test_spec_of_an_embedded_data_set_describes_its_data(name):
    """The spec table is what the planner and calibration use without loading: check it on real data."""
    d, spec = load_dataset(name), DATASET_SPECS[name]
    assert (d.input_shape, d.num_classes, len(d.y_train), len(d.y_test), d.default_model, d.augment) == \
        (spec.shape, spec.num_classes, spec.n_train, spec.n_test, spec.model, spec.augment)
    assert int(d.y_train.max()) + 1 == spec.num_classes and spec.source is None


def test_spec_table_is_the_data_set_list():
    assert list(DATASETS) == list(DATASET_SPECS)
    assert {n for n, s in DATASET_SPECS.items() if s.source} == {"mnist", "fmnist", "cifar10", "cifar100"}
    for spec in DATASET_SPECS.values():
        assert len(spec.mean) == len(spec.std) == (spec.shape[0] if spec.source else 0)


def test_cached_dataset_loads_once_and_keeps_two():
    clear_dataset_cache()
    a = cached_dataset("digits")
    assert cached_dataset("digits") is a                    # second caller: the same tensors
    assert cached_dataset("digits", device="cpu") is a      # device None and cpu are one key
    b = cached_dataset("mnist5k")
    assert cached_dataset("digits") is a and cached_dataset("mnist5k") is b
    clear_dataset_cache()
    assert cached_dataset("digits") is not a and torch.equal(cached_dataset("digits").x_train, a.x_train)
    clear_dataset_cache()


def test_unknown_dataset_message():
    with pytest.raises(ValueError) as e:
        load_dataset("foo")
    assert str(e.value) == "dataset: unknown 'foo'; choose one of: cifar10, cifar100, digits, fmnist, mnist, mnist5k"
    assert set(DATASETS) == {"mnist", "fmnist", "cifar10", "cifar100", "mnist5k", "digits"}


# --------------------------------------------------------------------------- torchvision formats
def _write_idx_images(path, images):
    n, h, w = images.shape
    path.write_bytes(struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())


def _write_idx_labels(path, labels):
    path.write_bytes(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def _make_mnist(root, folder, rng, n_train=20, n_test=10):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        _write_idx_images(raw / f"{split}-images-idx3-ubyte", x)
        _write_idx_labels(raw / f"{split}-labels-idx1-ubyte", y)
        arrays[split] = (x, y)
    return arrays


@pytest.mark.parametrize("name,folder,norm", [("mnist", "MNIST", MNIST_NORM), ("fmnist", "FashionMNIST", FMNIST_NORM)])
def test_mnist_family_from_idx_files(tmp_path, name, folder, norm):
    arrays = _make_mnist(tmp_path, folder, np.random.default_rng(1))
    d = load_dataset(name, root=tmp_path, download=False)
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    assert d.default_model == "cnn" and d.num_classes == 10 and not d.augment
    mean, std = norm
    for split, x, y in (("train", d.x_train, d.y_train), ("t10k", d.x_test, d.y_test)):
        raw_x, raw_y = arrays[split]
        assert y.dtype == torch.int64 and y.tolist() == raw_y.tolist()
        expected = (torch.from_numpy(raw_x.astype(np.float32)) / 255 - mean) / std
        assert torch.allclose(x[:, 0], expected, atol=1e-6)
        for n, i, j in ((0, 0, 0), (3, 14, 7), (len(raw_x) - 1, 27, 27)):
            assert x[n, 0, i, j].item() == pytest.approx((raw_x[n, i, j] / 255 - mean) / std, abs=1e-6)
    # files present: download=True must not try the network and gives the same tensors
    again = load_dataset(name, root=str(tmp_path), download=True)
    assert torch.equal(again.x_train, d.x_train)


def _cifar_rows(rng, n):
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def test_cifar10_from_pickled_batches(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    train_rows, train_labels = [], []
    for b in range(1, 6):
        rows, labels = _cifar_rows(rng, 4), rng.integers(0, 10, size=4).tolist()
        _dump(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5", "data": rows,
                                             "labels": labels, "filenames": [f"{b}_{i}.png" for i in range(4)]})
        train_rows.append(rows)
        train_labels += labels
    test_rows, test_labels = _cifar_rows(rng, 6), rng.integers(0, 10, size=6).tolist()
    _dump(folder / "test_batch", {"data": test_rows, "labels": test_labels})
    _dump(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)], "num_vis": 3072})
    train_rows = np.concatenate(train_rows)

    d = load_dataset("cifar10", root=tmp_path, download=False)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (6, 3, 32, 32)
    assert d.augment and d.default_model == "resnet20" and d.num_classes == 10
    assert d.y_train.tolist() == train_labels and d.y_test.tolist() == test_labels
    mean, std = CIFAR10_NORM
    # row layout: 1024 red, 1024 green, 1024 blue values, each row-major 32x32
    for n, c, i, j in ((0, 0, 0, 0), (5, 1, 10, 20), (19, 2, 31, 31), (7, 2, 0, 31)):
        raw = train_rows[n, c * 1024 + i * 32 + j]
        assert d.x_train[n, c, i, j].item() == pytest.approx((raw / 255 - mean[c]) / std[c], abs=1e-6)
    expected = torch.from_numpy(test_rows.reshape(6, 3, 32, 32).astype(np.float32)) / 255
    expected = (expected - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(d.x_test, expected, atol=1e-6)


def test_cifar100_from_pickled_files(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train_rows, test_rows = _cifar_rows(rng, 12), _cifar_rows(rng, 5)
    fine_tr, fine_te = rng.integers(0, 100, size=12).tolist(), rng.integers(0, 100, size=5).tolist()
    _dump(folder / "train", {"data": train_rows, "fine_labels": fine_tr, "coarse_labels": [0] * 12})
    _dump(folder / "test", {"data": test_rows, "fine_labels": fine_te, "coarse_labels": [0] * 5})
    _dump(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                            "coarse_label_names": [f"k{i}" for i in range(20)]})
    d = load_dataset("cifar100", root=tmp_path, download=False)
    assert d.x_train.shape == (12, 3, 32, 32) and d.num_classes == 100 and d.default_model == "resnet9"
    assert d.y_train.tolist() == fine_tr and d.y_test.tolist() == fine_te
    mean, std = CIFAR100_NORM
    for n, c, i, j in ((0, 0, 0, 0), (11, 2, 5, 9), (4, 1, 31, 0)):
        raw = train_rows[n, c * 1024 + i * 32 + j]
        assert d.x_train[n, c, i, j].item() == pytest.approx((raw / 255 - mean[c]) / std[c], abs=1e-6)
    n, c, i, j = 4, 1, 16, 16
    raw = test_rows[n, c * 1024 + i * 32 + j]
    assert d.x_test[n, c, i, j].item() == pytest.approx((raw / 255 - mean[c]) / std[c], abs=1e-6)


@pytest.mark.parametrize("name,hint", [("mnist", "MNIST"), ("fmnist", "FashionMNIST"),
                                       ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_missing_files_without_download(tmp_path, name, hint):
    with pytest.raises(ValueError) as e:
        load_dataset(name, root=tmp_path / "empty", download=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"'{name}'" in msg and str(tmp_path / "empty") in msg and "download=False" in msg and hint in msg


def test_partial_files_count_as_missing(tmp_path):
    arrays = _make_mnist(tmp_path, "MNIST", np.random.default_rng(0))
    assert arrays
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError, match="files not found"):
        load_dataset("mnist", root=tmp_path, download=False)


def test_download_failure_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(self):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tvd.CIFAR10, "download", offline)
    with pytest.raises(ValueError) as e:
        load_dataset("cifar10", root=tmp_path, download=True)
    msg = str(e.value)
    assert "\n" not in msg and "'cifar10'" in msg and str(tmp_path) in msg and "download" in msg
    assert "Name or service not known" in msg


def test_corrupt_files_raise_value_error(tmp_path):
    _make_mnist(tmp_path, "MNIST", np.random.default_rng(0))
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x00\x00garbage")
    with pytest.raises(ValueError, match="could not be read") as e:
        load_dataset("mnist", root=tmp_path, download=False)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- partitions
def _imbalanced_labels(seed=0):
    counts = [400, 250, 150, 90, 60, 25, 12, 8, 4, 1]
    y = np.repeat(np.arange(10), counts)
    return np.random.default_rng(seed).permutation(y)


def _assert_exact_cover(parts, n, k):
    assert len(parts) == k
    for p in parts:
        assert p.dtype == np.int64 and np.all(np.diff(p) > 0)  # sorted, no duplicate inside
    allidx = np.concatenate(parts)
    assert len(allidx) == n and np.array_equal(np.sort(allidx), np.arange(n))


def test_iid_partition():
    y = _imbalanced_labels()
    for k in (1, 7, 10, len(y)):
        parts = partition(y, k, "iid", seed=3)
        _assert_exact_cover(parts, len(y), k)
        sizes = [len(p) for p in parts]
        assert max(sizes) - min(sizes) <= 1
    a, b, c = (partition(y, 10, "iid", seed=s) for s in (0, 0, 1))
    assert all(np.array_equal(x, z) for x, z in zip(a, b))
    assert not all(np.array_equal(x, z) for x, z in zip(a, c))
    # torch tensors are accepted too
    t = partition(torch.as_tensor(y), 10, "iid", seed=0)
    assert all(np.array_equal(x, z) for x, z in zip(a, t))


def test_dirichlet_partition_exact_cover_and_determinism():
    y = _imbalanced_labels()
    for alpha in (0.1, 1.0, 100.0):
        parts = partition(y, 10, "dirichlet", alpha=alpha, seed=5)
        _assert_exact_cover(parts, len(y), 10)
        assert min(len(p) for p in parts) >= 2
    a = partition(y, 10, "dirichlet", alpha=1.0, seed=7)
    b = partition(y, 10, "dirichlet", alpha=1.0, seed=7)
    c = partition(y, 10, "dirichlet", alpha=1.0, seed=8)
    assert all(np.array_equal(x, z) for x, z in zip(a, b))
    assert not all(np.array_equal(x, z) for x, z in zip(a, c))


def test_dirichlet_min_size_is_enforced():
    y = _imbalanced_labels()
    unguarded = [min(len(p) for p in partition(y, 10, "dirichlet", alpha=0.3, seed=s, min_size=0)) for s in range(5)]
    assert min(unguarded) < 20  # the guard below is not vacuous
    for s in range(5):
        parts = partition(y, 10, "dirichlet", alpha=0.3, seed=s, min_size=20)
        _assert_exact_cover(parts, len(y), 10)
        assert min(len(p) for p in parts) >= 20
    with pytest.raises(ValueError, match=r"^alpha: .*min_size"):
        partition(y, 100, "dirichlet", alpha=0.01, seed=0, min_size=9, max_tries=5)


def test_dirichlet_is_heterogeneous():
    y = _imbalanced_labels()

    def mean_max_fraction(parts):
        cc = class_counts(y, parts, 10)
        return float(np.mean(cc.max(1) / cc.sum(1)))

    iid = np.mean([mean_max_fraction(partition(y, 10, "iid", seed=s)) for s in range(3)])
    skew = np.mean([mean_max_fraction(partition(y, 10, "dirichlet", alpha=0.1, seed=s)) for s in range(3)])
    assert iid < 0.5  # the largest class holds 40% of the data
    assert skew > iid + 0.25


def test_class_counts():
    y = np.array([0, 1, 1, 2, 2, 2])
    cc = class_counts(y, [np.array([0, 3]), np.array([1, 2, 4, 5])], 4)
    assert cc.tolist() == [[1, 0, 1, 0], [0, 2, 2, 0]]
    parts = partition(_imbalanced_labels(), 6, "dirichlet", seed=1)
    cc = class_counts(_imbalanced_labels(), parts, 10)
    assert cc.shape == (6, 10) and cc.sum(0).tolist() == [400, 250, 150, 90, 60, 25, 12, 8, 4, 1]


@pytest.mark.parametrize("kwargs,param", [
    (dict(k=0), "k"), (dict(k=1001), "k"), (dict(k=2.5), "k"),
    (dict(k=4, kind="noniid"), "kind"),
    (dict(k=4, kind="dirichlet", alpha=0), "alpha"), (dict(k=4, kind="dirichlet", alpha=-1.0), "alpha"),
])
def test_partition_validation(kwargs, param):
    y = _imbalanced_labels()
    with pytest.raises(ValueError) as e:
        partition(y, **kwargs)
    msg = str(e.value)
    assert msg.startswith(f"{param}:") and "\n" not in msg
    if param == "kind":
        assert "dirichlet" in msg and "iid" in msg


# --------------------------------------------------------------------------- augmentation
def _find_crop(out, padded, h, w):
    """(top, left, flipped) such that out is that crop (possibly mirrored) of padded, else None."""
    for top in range(padded.shape[1] - h + 1):
        for left in range(padded.shape[2] - w + 1):
            crop = padded[:, top:top + h, left:left + w]
            if torch.equal(out, crop):
                return top, left, False
            if torch.equal(out, crop.flip(-1)):
                return top, left, True
    return None


def test_augment_batch_is_crop_or_flip_of_padded_input():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, 32, 32, generator=g) + 5.0  # no value equals the zero padding
    out = augment_batch(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    found = [_find_crop(out[i], padded[i], 32, 32) for i in range(0, 48, 4)]
    assert all(f is not None for f in found)
    # it is random: several offsets and both orientations occur
    assert len({f[:2] for f in found}) >= 4
    flips = [_find_crop(out[i], padded[i], 32, 32)[2] for i in range(48)]
    assert 8 <= sum(flips) <= 40


def test_augment_batch_deterministic_and_fill():
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a = augment_batch(x, torch.Generator().manual_seed(7))
    b = augment_batch(x, torch.Generator().manual_seed(7))
    c = augment_batch(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # non-square input and per-channel fill: every output pixel is an input pixel or its channel's fill
    y = torch.rand(6, 2, 9, 12, generator=torch.Generator().manual_seed(2)) + 10
    out = augment_batch(y, torch.Generator().manual_seed(3), fill=(-1.0, -2.0))
    assert out.shape == y.shape
    for i in range(6):
        padded = torch.stack([torch.nn.functional.pad(y[i, ch], (4, 4, 4, 4), value=v)
                              for ch, v in enumerate((-1.0, -2.0))])
        assert _find_crop(out[i], padded, 9, 12) is not None
