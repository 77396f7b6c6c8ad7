"""``distill``: checkpoint → rollout dataset → symbolic regression → constant fitting → report.

Everything lands in one folder: ``dataset/`` (Parquet + manifest), ``test_dataset/`` (rollouts of seeds
the search never saw, when ``test_seeds`` are given), ``equations.json`` (the Pareto front,
the chosen, fitted equation, and ``update_rule``: the step it implies, e.g. 0.01·tanh(f) for RP — what
``SymbolicOptimizer`` and ``l2o meta-tune`` read), ``report.json`` and ``response.png`` (the recorded outputs against
the first input column, with the equation's curve at the median of every other column).

Two R² are reported. ``r2_fitted`` is on rows held out from the search, which come from the same rollouts
as the rows searched on. ``r2_new_rollouts`` is on rollouts of other seeds (``test_seeds``), recorded only
for this: what the equation scores on runs it has never seen. A learned optimizer's output is heavy-tailed
(on a 100-step RP, the 10 of 6,009 rows with the largest outputs carry half of the variance), so the first
figure depends on which of those rows the held-out fifth draws and how the equation meets them: on that
RP, search seeds 0, 1 and 2 (``seed`` in ``engine_settings``; each draws its own held-out rows) gave 0.943,
−0.04 and 0.915 on held-out rows, and 0.857, 0.863 and 0.855 on 8 new rollouts. The second figure also
counts how differently the L2O behaves from one run to the next.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from l2o.distill.engines import make_engine, predict, r2_score
from l2o.distill.equation import Equation
from l2o.distill.fit import fit_constants
from l2o.distill.record import RecordConfig, record, save_dataset


def select_columns(features: Sequence[str], max_lag: int) -> list[str]:
    return [f"{f}_{lag}" for lag in range(max_lag + 1) for f in features]


def default_features(model: str) -> list[str]:
    """The inputs distillation offers by default: what the L2O reads, and the long memory it keeps.

    A trained LSTM's output depends on far more than a 20-step window of its inputs: its cell states
    integrate mt over hundreds of steps. The EMAs of mt over ~10, 50 and 200 steps and the step count
    stand for that memory. DM reads only the raw gradient, yet learns to normalise it as RNNprop does,
    so it is offered the normalised features and √v̂ as well. ``benchmarks/distill_memory.py`` measures
    how much of an L2O's output each feature set can explain.
    """
    memory = ["mt_ema90", "mt_ema98", "mt_ema995", "step"]
    return {"dm": ["mt", "gt", "g", "sqrt_vhat", *memory], "rp": ["mt", "gt", *memory],
            "rp_si": ["mt", "gt", "m_p3", *memory]}[model]


def response_plot(eq: Equation, X: np.ndarray, y: np.ndarray, cols: list[str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    sample = np.random.default_rng(0).permutation(len(y))[:3000]
    ax.scatter(X[sample, 0], y[sample], s=3, alpha=0.3, label="learned optimizer (recorded)")
    grid = np.linspace(*np.percentile(X[:, 0], [1, 99]), 200)
    Xg = np.tile(np.median(X, 0), (len(grid), 1))
    Xg[:, 0] = grid
    ax.plot(grid, predict(eq.expr, Xg, cols), color="C3", lw=2, label="distilled equation")
    ax.set(xlabel=cols[0], ylabel="output", title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def distill(l2o, task, out: str | Path, record_config: RecordConfig = RecordConfig(),
            features: Sequence[str] | None = None, max_lag: int = 2, target: str = "raw",
            engine: str = "operon", engine_settings: dict[str, Any] | None = None,
            source: str | None = None, test_seeds: Sequence[int] = ()) -> dict[str, Any]:
    """``test_seeds``: rollouts recorded only to score the chosen equation on (none of the searched seeds)."""
    if max_lag >= record_config.window:
        raise ValueError(f"max_lag must be below the window ({record_config.window})")
    test_seeds = tuple(int(s) for s in test_seeds)
    if set(test_seeds) & set(record_config.seeds):
        raise ValueError(f"test_seeds {sorted(set(test_seeds) & set(record_config.seeds))} are also "
                         "searched on; give rollout seeds outside the recording's")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    features = list(features or default_features(l2o.config.model))
    dataset = record(l2o, task, record_config, source=source)
    save_dataset(dataset, out / "dataset")
    X, y, cols = dataset.xy(target, select_columns(features, max_lag))
    if test_seeds:  # recorded before the search, so that a rollout that fails does so before it
        test = record(l2o, task, dataclasses.replace(record_config, seeds=test_seeds), source=source)
        save_dataset(test, out / "test_dataset")
        Xt, yt, _ = test.xy(target, cols)
    est = make_engine(engine, **(engine_settings or {})).fit(X, y, cols)
    # held out: the search's rows (same split, same seed); the search's constants stay if fitting does
    # not help
    fitted, _ = fit_constants(est.best_, X, y, cols, holdout=est.holdout, seed=est.seed)
    r2_new = r2_score(yt, predict(fitted.expr, Xt, cols)) if test_seeds else None
    fitted.meta.update({"source_checkpoint": source, "target": target, "columns": cols,
                        "r2_new_rollouts": r2_new, "test_seeds": list(test_seeds)})
    rule = Equation(l2o.squash_expr(fitted.expr) if target == "raw" else fitted.expr,
                    meta={**fitted.meta, "from": "chosen", "r2_of_chosen": fitted.r2})
    doc = {"chosen": fitted.to_dict(), "update_rule": rule.to_dict(), "pareto_front": [e.to_dict() for e in est.pareto_front_],
           "search_seconds": est.seconds_}
    (out / "equations.json").write_text(json.dumps(doc, indent=1, default=str))
    png = response_plot(fitted, X, y, cols, out / "response.png", f"{l2o.config.model}: {fitted.text[:60]}")
    summary = {"rows": len(y), "columns": cols, "r2_search": est.best_.r2, "r2_fitted": fitted.r2,
               "r2_new_rollouts": r2_new, "test_seeds": list(test_seeds),
               "equation": fitted.text, "latex": fitted.latex(), "complexity": fitted.complexity,
               "seconds": est.seconds_, "engine": engine, "engine_settings": dict(engine_settings or {}),
               "out": str(out), "plot": str(png)}
    (out / "report.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary
