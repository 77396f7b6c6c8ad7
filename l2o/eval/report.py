"""Saving evaluation results: JSON (everything), CSV (mean ± std per step) and a PNG plot."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from l2o.eval.rollout import Curves


def save_json(curves: Sequence[Curves], path: Path, **meta: Any) -> Path:
    doc = {**meta, "summary": [c.summary() for c in curves], "curves": [c.to_dict() for c in curves]}
    path.write_text(json.dumps(doc, indent=1, allow_nan=False, default=str))
    return path


def load_json(path: Path) -> list[Curves]:
    return [Curves.from_dict(d) for d in json.loads(Path(path).read_text())["curves"]]


def save_csv(curves: Sequence[Curves], path: Path) -> Path:
    """Long format: one row per (optimizer, step) with mean and std over seeds."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "step", "mean", "std", "seeds"])
        for c in curves:
            for t, (m, s) in enumerate(zip(c.mean(), c.std())):
                w.writerow([c.label, t, f"{m:.6g}", f"{s:.6g}", len(c.seeds)])
    return path


def plot_curves(curves: Sequence[Curves], path: Path, title: str = "", log_y: bool = True,
                smooth: int = 10) -> Path:
    """Mean ± std over seeds per optimizer; ``smooth`` is a moving-average window over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for c in curves:
        losses = c.losses
        if smooth > 1 and c.steps > smooth:
            kernel = np.ones(smooth) / smooth
            losses = np.stack([np.convolve(row, kernel, mode="valid") for row in losses])
        x = np.arange(losses.shape[1]) + (smooth - 1 if smooth > 1 and c.steps > smooth else 0)
        mean, std = losses.mean(0), losses.std(0)
        (line,) = ax.plot(x, mean, label=f"{c.label} (final {c.final():.3g})", lw=1.5)
        ax.fill_between(x, np.maximum(mean - std, 1e-12 if log_y else -np.inf), mean + std,
                        color=line.get_color(), alpha=0.2, lw=0)
    if log_y:
        ax.set_yscale("log")
        lowest = min((float(np.nanmin(c.mean())) for c in curves if np.nanmin(c.mean()) > 0), default=None)
        if lowest:  # a band reaching below zero would otherwise stretch the axis down to its clip value
            ax.set_ylim(bottom=lowest / 10)
    n_seeds = max(len(c.seeds) for c in curves)
    ax.set(xlabel="step", ylabel="training loss", title=title or f"mean ± std over {n_seeds} seeds")
    return save_figure(fig, [ax], path)


def save_figure(fig, axes, path: Path, **legend) -> Path:
    """Grid and legend on each of ``axes``, then the figure written to ``path`` and closed."""
    import matplotlib.pyplot as plt

    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, **legend)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def format_table(curves: Sequence[Curves], equations: dict[str, str] | None = None) -> str:
    """Final loss per optimizer, one row each by its short label; ``equations`` (label → rule) are
    printed once, under the table."""
    rows = [c.summary() for c in curves]
    width = max(len(r["label"]) for r in rows)
    lines = [f"{'optimizer':<{width}}  {'final loss (mean ± std)':>24}  {'diverged':>8}  {'seconds':>8}"]
    for r in rows:
        final = "diverged" if r["final_mean"] is None else f"{r['final_mean']:.4g} ± {r['final_std']:.2g}"
        lines.append(f"{r['label']:<{width}}  {final:>24}  {r['diverged']:>8}  {r['seconds']:>8.1f}")
    for label, text in (equations or {}).items():
        lines.append(f"{label}: {text}")
    return "\n".join(lines)
