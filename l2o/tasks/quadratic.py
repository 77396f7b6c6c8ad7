"""The quadratic family of Andrychowicz et al. (2016): f(θ) = ‖Wθ − y‖², for fast tests.

Each seed of ``batches(split, seed)`` draws one problem (W, y), entries N(0, 1); with
``noise_std > 0`` every step sees y + N(0, noise_std²), a stochastic quadratic. ``init(seed)`` draws
θ ~ N(0, init_std²).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from l2o.config import option
from l2o.tasks.base import SPLITS, Params, Task, check_split


@dataclass(frozen=True)
class QuadraticConfig:
    dim: int = option(10, "dimension of θ")
    noise_std: float = option(0.0, "std of the noise added to y at every step (0: deterministic)")
    init_std: float = option(1.0, "θ ~ N(0, init_std²)")

    def __post_init__(self):
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")


class QuadraticTask(Task):
    name = "quadratic"

    def __init__(self, dim: int = 10, noise_std: float = 0.0, init_std: float = 1.0,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__(device, dtype)
        self.config = QuadraticConfig(dim, noise_std, init_std)
        self.dim, self.noise_std, self.init_std = dim, noise_std, init_std

    def init(self, seed: int) -> Params:
        g = torch.Generator().manual_seed(seed)
        theta = torch.randn(self.dim, generator=g, dtype=torch.float64) * self.init_std
        return {"theta": theta.to(self.device, self.dtype)}

    def loss(self, params: Params, batch: Any) -> torch.Tensor:
        w, y = batch
        return ((w @ params["theta"] - y) ** 2).sum()

    def batches(self, split: str, seed: int) -> Iterator[Any]:
        g = torch.Generator().manual_seed(seed * len(SPLITS) + SPLITS.index(check_split(split)))
        w = torch.randn(self.dim, self.dim, generator=g, dtype=torch.float64)
        y = torch.randn(self.dim, generator=g, dtype=torch.float64)
        while True:
            y_t = y + self.noise_std * torch.randn(self.dim, generator=g, dtype=torch.float64) if self.noise_std else y
            yield w.to(self.device, self.dtype), y_t.to(self.device, self.dtype)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "dim": self.dim, "noise_std": self.noise_std, "init_std": self.init_std}
