"""The small interface between a learned optimizer and the meta-trainer, recording and checkpoints.

A learned optimizer is an ``nn.Module`` (its weights are meta-learned) with a pure update function over
one flat vector of every optimizee coordinate. The meta-trainer, the checkpoint files and rollout
recording know only this class. A subclass names its kind (``class CoordinateLSTM(LearnedOptimizer,
kind="lstm")``), which checkpoints store beside its config so that they can rebuild it.

The update may be a squashed form of a raw network output (an LSTM's ``0.01·tanh(out)``); ``raw_step``,
``squash`` and ``squash_expr`` expose that split for distillation, which fits equations to the raw output.
By default there is no squash: the raw output is the update.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import nn


class LearnedOptimizer(nn.Module, abc.ABC):
    config: Any  # a dataclass; saved in checkpoints to rebuild the optimizer
    kind: ClassVar[str] = ""
    kinds: ClassVar[dict[str, type["LearnedOptimizer"]]] = {}

    def __init_subclass__(cls, kind: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if kind:
            cls.kind = kind
            LearnedOptimizer.kinds[kind] = cls

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "LearnedOptimizer":
        """An optimizer of this kind from the config mapping a checkpoint stored."""
        raise NotImplementedError(f"{cls.__name__} cannot be rebuilt from a checkpoint")

    @abc.abstractmethod
    def init_state(self, like: torch.Tensor) -> Any:
        """State for a flat parameter vector shaped like ``like`` (N,)."""

    @abc.abstractmethod
    def step(self, g: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Update (N,) to add to the parameters given flat gradient ``g``, and the new state."""

    @abc.abstractmethod
    def detach_state(self, state: Any) -> Any:
        """The same state cut from the autograd graph (the truncation point of BPTT)."""

    def raw_step(self, g: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """The raw output before ``squash`` and the new state."""
        return self.step(g, state)

    def squash(self, raw: torch.Tensor) -> torch.Tensor:
        """The update from a raw output."""
        return raw

    def squash_expr(self, raw: Any) -> Any:
        """``squash`` of a sympy expression: a rule fitted to raw outputs as the update it implies."""
        return raw
