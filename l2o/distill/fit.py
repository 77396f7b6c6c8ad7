"""Stage 2: every float constant of an equation becomes a torch parameter, fitted by MSE.

The equation runs through the one sympy→torch table (``TorchExpression``) in float64; LBFGS (default)
or Adam minimises the mean squared error on a training split; R² on a held-out split is reported
before and after. A fit that makes the held-out R² worse is not kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from l2o.distill.engines import holdout_split, r2_score
from l2o.expr import Equation, TorchExpression, predict


@dataclass(frozen=True)
class FitReport:
    r2_before: float
    r2_after: float
    mse_before: float
    mse_after: float
    constants: int
    kept: bool  # False when fitting did not improve the held-out R² (the original is returned)


def fit_constants(equation: Equation, X: np.ndarray, y: np.ndarray, feature_names: Sequence[str],
                  holdout: float = 0.2, seed: int = 0, method: str = "lbfgs", steps: int = 200,
                  lr: float = 1e-2) -> tuple[Equation, FitReport]:
    """Fit ``equation``'s float constants to (X, y); returns the fitted equation and a report."""
    if method not in ("lbfgs", "adam"):
        raise ValueError(f"method must be 'lbfgs' or 'adam', got {method!r}")
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64).reshape(-1)
    names = list(feature_names)
    hold, train = holdout_split(len(y), holdout, seed)
    module = TorchExpression(equation.expr, learn_constants=True)
    cols = {n: torch.from_numpy(np.ascontiguousarray(X[train, i])) for i, n in enumerate(names)}
    target = torch.from_numpy(y[train])

    scale = 1.0 / max(float(target.var()), 1e-300)  # a loss of order one keeps LBFGS's tolerances meaningful

    def mse() -> torch.Tensor:
        return torch.mean((module(cols) - target) ** 2)

    before_r2 = r2_score(y[hold], predict(equation.expr, X[hold], names))
    with torch.no_grad():
        before_mse = float(mse())
    if module.constants.numel():
        if method == "lbfgs":
            opt = torch.optim.LBFGS([module.constants], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe",
                                    tolerance_grad=1e-12, tolerance_change=1e-15)

            def closure():
                opt.zero_grad()
                loss = mse() * scale
                loss.backward()
                return loss

            opt.step(closure)
        else:
            opt = torch.optim.Adam([module.constants], lr=lr)
            for _ in range(steps):
                opt.zero_grad()
                (mse() * scale).backward()
                opt.step()
    fitted = module.to_sympy()
    after_r2 = r2_score(y[hold], predict(fitted, X[hold], names))
    with torch.no_grad():
        after_mse = float(mse())
    kept = bool(np.isfinite(after_r2) and after_r2 >= before_r2)
    result = Equation(fitted if kept else equation.expr, loss=after_mse if kept else before_mse,
                      r2=after_r2 if kept else before_r2, meta={**equation.meta, "fitted": kept})
    return result, FitReport(before_r2, after_r2, before_mse, after_mse, module.constants.numel(), kept)
