"""Optimizees as functional tasks, and the named presets the CLI and the jobs use.

``make_task(name, **overrides)`` builds a preset; overrides replace fields of its config (for image
tasks ``ImageTaskConfig``: ``dataset``, ``batch_size``, ``init_std`` …; for ``quadratic``: ``dim``,
``noise_std``, ``init_std``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from l2o.config import from_dict, option, to_dict
from l2o.tasks.base import SPLITS, Params, Task
from l2o.tasks.data import DATASETS, DataUnavailableError, ImageData, load_dataset
from l2o.tasks.quadratic import QuadraticConfig, QuadraticTask
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


def task_config(name: str, **overrides: Any) -> ImageTaskConfig | QuadraticConfig:
    """The typed config of task ``name`` with ``overrides`` (values may be text, as on a command line)."""
    if name == "quadratic":
        return from_dict(QuadraticConfig, overrides, f"task {name!r}")
    if name not in PRESETS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASK_NAMES)}")
    return from_dict(ImageTaskConfig, {**to_dict(PRESETS[name]), **overrides}, f"task {name!r}")


def make_task(name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
              **overrides: Any) -> Task:
    """Build the named task; ``overrides`` replace fields of its preset config."""
    config = task_config(name, **overrides)
    if isinstance(config, QuadraticConfig):
        return QuadraticTask(**dataclasses.asdict(config), device=device, dtype=dtype)
    return ImageTask(name, config, device=device, dtype=dtype)


@dataclass(frozen=True)
class TaskSpec:
    """A task by name with the fields of its config it overrides; checked (and typed) where it is made."""

    name: str = option("mnist_mlp", f"optimizee: one of {', '.join(TASK_NAMES)}")
    options: dict[str, Any] = option(factory=dict, help="fields of the task's config to override "
                                     "(e.g. batch_size, hidden, activation, init_std)")

    def __post_init__(self):
        config = task_config(self.name, **self.options)
        typed = to_dict(config)
        object.__setattr__(self, "options", {k: typed[k] for k in self.options})

    def build(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Task:
        return make_task(self.name, device=device, dtype=dtype, **self.options)

    @property
    def label(self) -> str:
        opts = ",".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                        for k, v in sorted(self.options.items()))
        return f"{self.name}({opts})" if opts else self.name


__all__ = ["DATASETS", "PRESETS", "SPLITS", "TASK_NAMES", "DataUnavailableError", "ImageData", "ImageTask",
           "ImageTaskConfig", "Params", "QuadraticConfig", "QuadraticTask", "Task", "TaskSpec", "load_dataset",
           "make_task", "task_config"]
