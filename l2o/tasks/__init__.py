"""Optimizees as functional tasks, and the named presets the CLI and the jobs use.

``make_task(name, **overrides)`` builds a preset; overrides replace fields of its config (for image
tasks ``ImageTaskConfig``: ``dataset``, ``batch_size``, ``init_std`` …; for ``quadratic``: ``dim``,
``noise_std``, ``init_std``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from l2o.tasks.base import SPLITS, Params, Task
from l2o.tasks.data import DATASETS, DataUnavailableError, ImageData, load_dataset
from l2o.tasks.quadratic import QuadraticTask
from l2o.tasks.vision import ImageTask, ImageTaskConfig

PRESETS: dict[str, ImageTaskConfig] = {
    # the paper's main optimizee: MLP 784-30-20-10, ReLU
    "mnist_mlp": ImageTaskConfig(),
    # five layers: at N(0, 0.01^2) the signal vanishes, so this one keeps PyTorch's default init
    "mnist_mlp_deep": ImageTaskConfig(hidden=(30, 30, 30, 20), init_std=None),
    "mnist_cnn": ImageTaskConfig(arch="cnn", init_std=None),
    # the paper's small CNN on "CIFAR-half": the first 5 classes of CIFAR-10
    "cifar_half_cnn": ImageTaskConfig(arch="cnn", dataset="cifar10", classes=5, init_std=None),
    "resnet18_cifar10": ImageTaskConfig(arch="resnet18", dataset="cifar10", init_std=None),
    "resnet50_cifar10": ImageTaskConfig(arch="resnet50", dataset="cifar10", init_std=None),
    "mobilenet_v2_cifar10": ImageTaskConfig(arch="mobilenet_v2", dataset="cifar10", init_std=None),
}
TASK_NAMES = ("quadratic", *PRESETS)


def make_task(name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
              **overrides: Any) -> Task:
    """Build the named task; ``overrides`` replace fields of its preset config."""
    if name == "quadratic":
        return QuadraticTask(device=device, dtype=dtype, **overrides)
    if name not in PRESETS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASK_NAMES)}")
    fields = {f.name for f in dataclasses.fields(ImageTaskConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown option(s) for task {name!r}: {', '.join(sorted(unknown))}; "
                         f"expected among {', '.join(sorted(fields))}")
    if "hidden" in overrides:
        overrides["hidden"] = tuple(overrides["hidden"])
    return ImageTask(name, dataclasses.replace(PRESETS[name], **overrides), device=device, dtype=dtype)


__all__ = ["DATASETS", "PRESETS", "SPLITS", "TASK_NAMES", "DataUnavailableError", "ImageData", "ImageTask",
           "ImageTaskConfig", "Params", "QuadraticTask", "Task", "load_dataset", "make_task"]
