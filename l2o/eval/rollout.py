"""Roll an optimizer on a task for N steps over K seeds and keep the training-loss curves.

Seed k draws the optimizee with ``task.init(k)`` and its minibatches from ``task.batches(split, k)``, so
every optimizer sees the same initial points and the same data. Gradients are zeroed every step. A
run whose loss turns non-finite stops there; the rest of its curve is NaN and it counts as diverged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from l2o.eval.optimizers import OptimizerSpec
from l2o.tasks import Task

FINAL_WINDOW = 10  # "final loss" = mean training loss over the last FINAL_WINDOW steps (minibatch noise)
OptimizerFactory = Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer]


@dataclass
class Curves:
    """Training-loss curves of one optimizer: ``losses[k][t]`` is seed k's loss at step t."""

    label: str
    task: dict[str, Any]
    seeds: list[int]
    losses: np.ndarray  # (len(seeds), steps), NaN after a divergence
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return self.losses.shape[1]

    def mean(self) -> np.ndarray:
        return self.losses.mean(0)

    def std(self) -> np.ndarray:
        with np.errstate(over="ignore"):  # a diverging run's huge losses overflow the square
            return self.losses.std(0)

    def final_per_seed(self) -> np.ndarray:
        return self.losses[:, -min(FINAL_WINDOW, self.steps):].mean(1)

    def final(self) -> float:
        """Mean over seeds of the final loss; inf if any seed diverged."""
        per_seed = self.final_per_seed()
        return float(per_seed.mean()) if np.isfinite(per_seed).all() else math.inf

    def final_geometric(self) -> float:
        """Geometric mean over seeds of the final loss; inf if any seed diverged. Near convergence one
        seed may end at 1e-9 and the next at 1e-5: the mean follows the worst seed alone, this weighs each
        seed's orders of magnitude alike."""
        return final_geometric([self])

    def summary(self) -> dict[str, Any]:
        per_seed = self.final_per_seed()
        final = self.final()
        return {"label": self.label, "final_mean": final if math.isfinite(final) else None,
                "final_std": float(per_seed.std()) if np.isfinite(per_seed).all() else None,
                "diverged": int((~np.isfinite(per_seed)).sum()), "seeds": len(self.seeds),
                "steps": self.steps, "seconds": round(self.seconds, 3)}

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "task": self.task, "seeds": self.seeds, "seconds": self.seconds,
                "extra": self.extra, "losses": [[None if not math.isfinite(v) else v for v in row]
                                                 for row in self.losses.tolist()]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Curves":
        losses = np.array([[np.nan if v is None else v for v in row] for row in d["losses"]], dtype=np.float64)
        return cls(d["label"], d["task"], list(d["seeds"]), losses, d.get("seconds", 0.0), d.get("extra", {}))


def final_geometric(curves: Sequence[Curves]) -> float:
    """Geometric mean of the final losses of every run in ``curves`` (several optimizees, one optimizer);
    inf if any run diverged."""
    if not curves:
        raise ValueError("final_geometric needs at least one optimizee's curves")
    per_seed = np.concatenate([c.final_per_seed() for c in curves])
    if not np.isfinite(per_seed).all():
        return math.inf
    return float(np.exp(np.log(np.maximum(per_seed, 1e-30)).mean()))


def rollout(task: Task, optimizer: OptimizerSpec | OptimizerFactory, steps: int, seeds: Sequence[int],
            split: str = "eval", label: str | None = None, progress: bool = True) -> Curves:
    """Train a fresh optimizee per seed with ``optimizer`` and record its loss at every step."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not seeds:
        raise ValueError("need at least one seed")
    factory = optimizer.build if isinstance(optimizer, OptimizerSpec) else optimizer
    label = label or (optimizer.label if isinstance(optimizer, OptimizerSpec) else getattr(optimizer, "__name__", "opt"))
    losses = np.full((len(seeds), steps), np.nan)
    bar = tqdm(total=steps * len(seeds), desc=label, disable=not progress, leave=False, unit="step")
    t0 = time.perf_counter()
    for row, seed in enumerate(seeds):
        named = {k: v.requires_grad_() for k, v in task.init(seed).items()}
        opt = factory(list(named.values()))
        batches = task.batches(split, seed)
        for t in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = task.loss(named, next(batches))
            value = loss.item()
            if not math.isfinite(value):
                bar.update(steps - t)
                break
            losses[row, t] = value
            loss.backward()
            opt.step()
            bar.update(1)
    bar.close()
    return Curves(label, task.describe(), list(seeds), losses, time.perf_counter() - t0)
