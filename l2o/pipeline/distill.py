"""Search → fit → update rule on arrays: the distillation every caller runs (the stages, ``POST /distill``).

``search_front`` runs one search per point of the ``SearchConfig`` (through a placement) and pools their
fronts; ``fit_front`` fits every candidate's float constants (stage 2) on the rows the search did not hold
out, scores it on the held-out rows and on new rollouts, and turns it into the step it implies
(``update_rule``: the one squash of a raw-output equation, read from the dataset's ``update_of_raw``).
Selection is ``l2o.distill.select.choose`` over the fitted candidates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from l2o.distill.engines import SearchConfig, r2_score
from l2o.distill.fit import fit_constants
from l2o.distill.select import pool_fronts
from l2o.expr import Equation, parse_equation, predict


def update_rule(expr: sp.Expr, update_of_raw: str | None) -> sp.Expr:
    """The step an equation of the raw output implies: ``update_of_raw`` (e.g. ``0.01*tanh(raw)``, as the
    recording wrote it from the learned optimizer's ``squash_expr``) with ``raw`` replaced by ``expr``;
    ``expr`` itself when there is no squash (an equation fitted to the update)."""
    if not update_of_raw:
        return expr
    squash = parse_equation(update_of_raw, variables={"raw"})
    return squash.xreplace({sp.Symbol("raw", real=True): expr})


def search_front(X: np.ndarray, y: np.ndarray, columns: Sequence[str], config: SearchConfig, place,
                 threads: int | None = None) -> tuple[list[Equation], list[dict[str, Any]]]:
    """The pooled Pareto front of every search point, and what each search did."""
    points = config.points(threads)
    # Each front through its JSON form (text, as files and Ray hand it on), so that every caller fits the
    # same expressions: the text keeps 15 significant digits of each constant.
    results = [([Equation.from_dict(e.to_dict()) for e in front], seconds)
               for front, seconds in place.search(X, y, list(columns), config.engine, points)]
    searches = [{"point": {k: list(v) if isinstance(v, tuple) else v for k, v in p.items() if k != "threads"},
                 "equations": len(front), "seconds": round(seconds, 2)} for p, (front, seconds) in zip(points, results)]
    return pool_fronts([front for front, _ in results]), searches


def fit_front(front: Sequence[Equation], X: np.ndarray, y: np.ndarray, columns: Sequence[str],
              search: SearchConfig, method: str = "lbfgs", steps: int = 200,
              test: tuple[np.ndarray, np.ndarray] | None = None, update_of_raw: str | None = None
              ) -> list[dict[str, Any]]:
    """Every candidate fitted and scored, simplest first (JSON-ready dicts)."""
    out = []
    for eq in front:
        fitted, report = fit_constants(eq, X, y, columns, holdout=search.holdout, seed=search.seed, method=method,
                                       steps=steps)
        r2_new = r2_score(test[1], predict(fitted.expr, test[0], columns)) if test is not None else None
        rule = Equation(update_rule(fitted.expr, update_of_raw if search.target == "raw" else None),
                        r2=fitted.r2, meta={"r2_new_rollouts": _clean(r2_new), "complexity_of_fitted": fitted.complexity})
        out.append({"equation": fitted.text, "latex": fitted.latex(), "complexity": fitted.complexity,
                    "r2": _clean(fitted.r2), "r2_search": _clean(report.r2_before), "r2_new_rollouts": _clean(r2_new),
                    "validation_r2": eq.meta.get("validation_r2"), "loss": _clean(eq.loss), "fitted": report.kept,
                    "search": eq.meta.get("search"), "update_rule": rule.to_dict()})
    return out


def as_equations(candidates: Sequence[dict[str, Any]]) -> list[Equation]:
    """The candidates as Equations carrying what selection reads (complexity, validation R²)."""
    return [Equation(parse_equation(c["equation"]), loss=c.get("loss"), r2=c.get("r2"),
                     meta={"validation_r2": c.get("validation_r2")}) for c in candidates]


def _clean(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
