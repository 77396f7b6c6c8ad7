"""The task interface: an optimizee as a pure function of its parameters.

A task owns a model's architecture and its data. ``init(seed)`` draws fresh parameters,
``loss(params, batch)`` is differentiable in ``params``, and ``batches(split, seed)`` yields an endless
stream of minibatches from a named split. Meta-training draws from ``meta_train`` (and ``meta_valid``
for model selection); evaluation draws from ``eval``. The splits are disjoint by construction.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Any

import torch

SPLITS = ("meta_train", "meta_valid", "eval")

Params = dict[str, torch.Tensor]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


class Task(abc.ABC):
    """An optimizee: parameters, a loss, and minibatches.

    Subclasses set ``name`` and implement the three methods. ``device`` and ``dtype`` say where
    parameters and batches live; a task moves its own data there.
    """

    name: str = "task"

    def __init__(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        self.device = torch.device(device)
        self.dtype = dtype

    @abc.abstractmethod
    def init(self, seed: int) -> Params:
        """Fresh parameters for ``seed`` (leaf tensors that do not require grad)."""

    @abc.abstractmethod
    def loss(self, params: Params, batch: Any) -> torch.Tensor:
        """Scalar training loss of ``params`` on ``batch``; differentiable in ``params``."""

    @abc.abstractmethod
    def batches(self, split: str, seed: int) -> Iterator[Any]:
        """An endless, seeded stream of minibatches from ``split``."""

    def num_params(self) -> int:
        return sum(p.numel() for p in self.init(0).values())

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for manifests and reports."""
        return {"name": self.name, "num_params": self.num_params(), "dtype": str(self.dtype).split(".")[-1]}
