"""The small interface between a learned optimizer and the meta-trainer.

A learned optimizer is an ``nn.Module`` (its weights are meta-learned) with a pure update function over
one flat vector of every optimizee coordinate. The meta-trainer knows only this class.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn


class LearnedOptimizer(nn.Module, abc.ABC):
    config: Any  # a dataclass; saved in checkpoints to rebuild the optimizer

    @abc.abstractmethod
    def init_state(self, like: torch.Tensor) -> Any:
        """State for a flat parameter vector shaped like ``like`` (N,)."""

    @abc.abstractmethod
    def step(self, g: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Update (N,) to add to the parameters given flat gradient ``g``, and the new state."""

    @abc.abstractmethod
    def detach_state(self, state: Any) -> Any:
        """The same state cut from the autograd graph (the truncation point of BPTT)."""
