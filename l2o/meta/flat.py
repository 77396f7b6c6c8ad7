"""Optimizee parameters as one flat vector, and its loss and gradient at a point.

Learned optimizers see every coordinate of every tensor as one batch, so the meta-trainer and
``LSTMOptimizer`` keep parameters as a single flat vector and hand the task views shaped like its tensors.
"""

from __future__ import annotations

from typing import Any

import torch

from l2o.tasks import Params, Task


class FlatParams:
    """The layout (names, shapes, sizes) of a task's parameters in one flat vector."""

    def __init__(self, params: Params):
        self.names = list(params)
        self.shapes = [p.shape for p in params.values()]
        self.sizes = [p.numel() for p in params.values()]
        self.numel = sum(self.sizes)

    def flatten(self, params: Params) -> torch.Tensor:
        return torch.cat([params[k].reshape(-1) for k in self.names])

    def unflatten(self, flat: torch.Tensor) -> Params:
        return {k: v.view(s) for k, v, s in zip(self.names, flat.split(self.sizes), self.shapes)}


def loss_and_grad(task: Task, layout: FlatParams, theta: torch.Tensor, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss (a detached scalar) and flat gradient of ``task`` at flat ``theta`` on ``batch``."""
    theta = theta.detach().requires_grad_()
    with torch.enable_grad():
        loss = task.loss(layout.unflatten(theta), batch)
        (grad,) = torch.autograd.grad(loss, theta)
    return loss.detach(), grad


def loss_and_grad_functional(task: Task, layout: FlatParams, theta: torch.Tensor, batch: Any
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``loss_and_grad`` through ``torch.func.grad``, the form ``torch.compile`` traces whole."""
    def loss(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        value = task.loss(layout.unflatten(flat), batch)
        return value, value.detach()

    grad, value = torch.func.grad(loss, has_aux=True)(theta.detach())
    return value, grad
