"""Plots of what a distilled rule does, drawn on the recorded rows themselves.

The recorded columns are correlated (``mt_1``, ``mt_2`` and the EMAs move with ``mt_0``), so a curve of the
equation over one column with the others held at their medians misses the cloud even for a good fit.
``response_plot`` draws instead, on a sample of the rows, the equation's output against the recorded one
(a parity plot) and both over the first column. ``candidates_plot`` shows selection: each candidate's
rollout loss against its complexity, the chosen one marked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from l2o.eval.report import save_figure
from l2o.expr import Equation, predict


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def response_plot(eq: Equation, X: np.ndarray, y: np.ndarray, columns: list[str], path: Path, title: str,
                  sample: int = 3000) -> Path:
    plt = _plt()
    rows = np.random.default_rng(0).permutation(len(y))[:sample]
    pred = predict(eq.expr, X[rows], columns)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    lo, hi = np.percentile(np.concatenate([y[rows], pred[np.isfinite(pred)]]), [0.5, 99.5])
    left.scatter(y[rows], pred, s=3, alpha=0.3)
    left.plot([lo, hi], [lo, hi], color="C3", lw=1, label="equation = recorded")
    left.set(xlabel="recorded output", ylabel="equation's output", title="parity (recorded rows)")
    right.scatter(X[rows, 0], y[rows], s=3, alpha=0.3, label="learned optimizer (recorded)")
    right.scatter(X[rows, 0], pred, s=3, alpha=0.3, color="C3", label="equation on the same rows")
    right.set(xlabel=columns[0], ylabel="output", title=title[:70])
    return save_figure(fig, (left, right), path, markerscale=3)


def candidates_plot(candidates: list[dict[str, Any]], chosen: int, path: Path) -> Path:
    """Final rollout loss (log) against complexity; diverged candidates at the top edge."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
    finite = [c["rollout_loss"] for c in candidates if c.get("rollout_loss") is not None
              and math.isfinite(c["rollout_loss"])]
    top = max(finite) * 10 if finite else 1.0
    xs = [c["complexity"] for c in candidates]
    ys = [c["rollout_loss"] if c.get("rollout_loss") is not None and math.isfinite(c["rollout_loss"]) else top
          for c in candidates]
    ax.scatter(xs, ys, label="candidates (diverged: top edge)")
    ax.scatter([xs[chosen]], [ys[chosen]], s=160, facecolors="none", edgecolors="C3", label="chosen")
    ax.set(xlabel="complexity (nodes)", ylabel="final loss on meta_valid", yscale="log",
           title="selection by rollout")
    return save_figure(fig, [ax], path)
