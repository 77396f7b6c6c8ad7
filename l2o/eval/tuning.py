"""A small learning-rate grid ("tuned Adam"): the lr with the lowest mean final loss wins."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from l2o.eval.optimizers import OptimizerSpec
from l2o.eval.rollout import Curves, rollout
from l2o.tasks import Task

DEFAULT_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)  # 5 points, half-decades around Adam's default


def lr_grid(center: float = 1e-3, points: int = 5, factor: float = np.sqrt(10)) -> tuple[float, ...]:
    """``points`` learning rates spaced by ``factor`` (default half a decade), centred on ``center``."""
    offsets = np.arange(points) - (points - 1) / 2
    return tuple(float(f"{center * factor ** o:.3g}") for o in offsets)


def tune_lr(task: Task, spec: OptimizerSpec, steps: int, seeds: Sequence[int],
            lrs: Sequence[float] = DEFAULT_GRID, split: str = "eval",
            progress: bool = True) -> tuple[Curves, list[Curves]]:
    """Roll ``spec`` at every lr of ``lrs``; return the best curves (label marked "tuned") and all of them."""
    runs = [rollout(task, spec.with_(lr=lr), steps, seeds, split=split, progress=progress) for lr in lrs]
    best = min(runs, key=lambda c: c.final())
    best.extra["tuned_over_lrs"] = list(lrs)
    best.label = f"tuned {best.label}"
    return best, runs
