"""Image-classification optimizees: MLPs, the paper's small CNN, CIFAR-style ResNets and MobileNetV2.

Each is an ``nn.Module`` used only as a template: parameters live in plain dicts and the loss is
``torch.func.functional_call``. ``init(seed)`` re-draws the weights of every linear and convolutional
layer, either N(0, init_std²) (the paper's optimizee sampling) or, with ``init_std=None``, PyTorch's
default initialisation; normalisation layers keep gamma = 1, beta = 0 and their running statistics are
never overwritten.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from l2o.config import option
from l2o.tasks.base import Params, Task, check_split
from l2o.tasks.data import ImageBatches, load_dataset

ARCHS = ("mlp", "cnn", "resnet18", "resnet50", "mobilenet_v2")
_SHAPES = {"mnist": (1, 28, 28, 10), "cifar10": (3, 32, 32, 10), "cifar100": (3, 32, 32, 100)}


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "elu": nn.ELU}


@dataclass(frozen=True)
class ImageTaskConfig:
    arch: str = option("mlp", f"network: one of {', '.join(ARCHS)}")
    dataset: str = option("mnist", "mnist, cifar10 or cifar100")
    classes: int | None = option(None, "keep only labels below this (5 on CIFAR-10: the paper's CIFAR-half)")
    batch_size: int = option(128, "minibatch size of every split")
    hidden: tuple[int, ...] = option((30, 20), "MLP hidden widths")
    activation: str = option("relu", f"MLP activation: one of {', '.join(ACTIVATIONS)}")
    init_std: float | None = option(0.01, "weights N(0, init_std²); unset: PyTorch's default initialisation")
    data_root: str | None = option(None, "dataset folder; unset: $L2O_DATA, else ~/.l2o/data")
    download: bool | None = option(None, "allow downloads; unset: $L2O_DOWNLOAD, default on")

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; expected one of {', '.join(ARCHS)}")
        if self.dataset not in _SHAPES:
            raise ValueError(f"unknown dataset {self.dataset!r}; expected one of {', '.join(_SHAPES)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of {', '.join(ACTIVATIONS)}")
        if self.batch_size < 1 or any(h < 1 for h in self.hidden) or (self.classes is not None and self.classes < 2):
            raise ValueError("batch_size and hidden widths must be >= 1, classes >= 2")


def build_module(cfg: ImageTaskConfig) -> nn.Module:
    """The template module for ``cfg`` (CIFAR-style stems: 3x3 stride-1 first conv, no max-pool)."""
    import torchvision

    channels, height, width, n_classes = _SHAPES[cfg.dataset]
    n_classes = cfg.classes or n_classes
    if cfg.arch == "mlp":
        layers: list[nn.Module] = [nn.Flatten()]
        widths = [channels * height * width, *cfg.hidden]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), ACTIVATIONS[cfg.activation]()]
        return nn.Sequential(*layers, nn.Linear(widths[-1], n_classes))
    if cfg.arch == "cnn":  # the paper's Conv-MNIST / Conv-CIFAR optimizee
        return nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * (height // 4) * (width // 4), n_classes),
        )
    if cfg.arch in ("resnet18", "resnet50"):
        model = getattr(torchvision.models, cfg.arch)(num_classes=n_classes)
        model.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
        return model
    model = torchvision.models.mobilenet_v2(num_classes=n_classes)
    model.features[0][0] = nn.Conv2d(channels, 32, 3, stride=1, padding=1, bias=False)
    return model


class ImageTask(Task):
    """Cross-entropy training of an image classifier, parameters passed functionally."""

    def __init__(self, name: str, config: ImageTaskConfig, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        super().__init__(device, dtype)
        self.name, self.config = name, config
        self.module = build_module(config).to(device=self.device, dtype=dtype).train()
        self._cpu_module: nn.Module | None = None  # where init draws its weights

    def init(self, seed: int) -> Params:
        """Fresh weights, drawn on the CPU so that a seed gives the same optimizee on every device."""
        std = self.config.init_std
        with torch.random.fork_rng(devices=[]):
            if self._cpu_module is None:
                self._cpu_module = build_module(self.config).to(dtype=self.dtype)
            torch.manual_seed(seed)
            for m in self._cpu_module.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    if std is None:
                        m.reset_parameters()
                    else:
                        for p in m.parameters(recurse=False):
                            p.data.normal_(0.0, std)
        return {k: v.detach().to(self.device, copy=True) for k, v in self._cpu_module.named_parameters()}

    def loss(self, params: Params, batch: Any) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(functional_call(self.module, params, (x,)), y)

    def batches(self, split: str, seed: int) -> Iterator[Any]:
        check_split(split)
        cfg = self.config
        data = load_dataset(cfg.dataset, cfg.data_root, cfg.download)
        return iter(ImageBatches(data, split, cfg.batch_size, seed, classes=cfg.classes,
                                 device=self.device, dtype=self.dtype))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **dataclasses.asdict(self.config)}
