"""The paper's sanity table: can symbolic regression recover known update rules from gradient history?

Synthetic gradient sequences (one per row, ``LAGS`` = 20 steps, the whole history of the rule):
every row draws a scale σ = 10^U(−2, 0) and a drift μ ~ N(0, 0.5²), then g_t = σ·(μ + ε_t) with
ε_t ~ N(0, 1) i.i.d. The log-uniform scales make scale-invariant rules (Adam) differ from linear ones.

The regression sees the 20 lags ``g_0`` (now) … ``g_19`` and five window summaries computed from them,
the same kind of features the learned optimizers read: ``g_mean``, ``g_rms`` (root mean square) and the
EMAs ``g_ema50``, ``g_ema90``, ``g_ema99`` (e ← d·e + (1−d)·g from e = 0 at the oldest lag, no bias
correction). Targets, with states starting at zero at the oldest lag:

    minus_001g   −0.01·g_t
    linear_decay Σ_{i=0..10} (1 − 0.1 i)·g_{t−i}
    poly_exp     g_t² + g_{t−1} + 2·g_{t−2} + exp(g_{t−4})
    momentum06   m_t = 0.6·m_{t−1} + g_t
    adam09       m̂_t / (√v̂_t + 1e−8), Adam with β₁ = 0.9, β₂ = 0.999, bias-corrected
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

from l2o.distill.engines import make_engine
from l2o.distill.fit import fit_constants

LAGS = 20
LAG_NAMES = [f"g_{i}" for i in range(LAGS)]
SUMMARY_NAMES = ["g_mean", "g_rms", "g_ema50", "g_ema90", "g_ema99"]
PAPER = {  # the paper's sanity table (PySR): R², seconds
    "minus_001g": (1.0, 49), "momentum06": (0.97, 90), "adam09": (0.89, 879),
}


def gradient_windows(n: int, seed: int = 0) -> np.ndarray:
    """(n, LAGS) synthetic gradients, column i = lag i (column 0 is the newest)."""
    rng = np.random.default_rng(seed)
    sigma = 10.0 ** rng.uniform(-2, 0, size=(n, 1))
    mu = rng.normal(0, 0.5, size=(n, 1))
    return sigma * (mu + rng.normal(size=(n, LAGS)))


def _ema(G: np.ndarray, decay: float) -> np.ndarray:
    e = np.zeros(len(G))
    for i in range(LAGS - 1, -1, -1):  # oldest → newest
        e = decay * e + (1 - decay) * G[:, i]
    return e


def features(G: np.ndarray) -> tuple[np.ndarray, list[str]]:
    summaries = [G.mean(1), np.sqrt((G ** 2).mean(1)), _ema(G, 0.5), _ema(G, 0.9), _ema(G, 0.99)]
    return np.column_stack([G, *summaries]), LAG_NAMES + SUMMARY_NAMES


def _adam(G: np.ndarray, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> np.ndarray:
    m, v = np.zeros(len(G)), np.zeros(len(G))
    for i in range(LAGS - 1, -1, -1):
        m = b1 * m + (1 - b1) * G[:, i]
        v = b2 * v + (1 - b2) * G[:, i] ** 2
    return (m / (1 - b1 ** LAGS)) / (np.sqrt(v / (1 - b2 ** LAGS)) + eps)


@dataclass(frozen=True)
class SanityCase:
    name: str
    formula: str  # human-readable target
    target: Callable[[np.ndarray], np.ndarray]
    settings: dict  # engine settings that fit this case's difficulty
    exact_r2: float = 1 - 1e-9  # R² counted as an exact recovery


CASES = (
    SanityCase("minus_001g", "-0.01*g_t", lambda G: -0.01 * G[:, 0],
               dict(generations=30, population=300, max_complexity=10)),
    SanityCase("linear_decay", "sum_{i<=10} (1-0.1i)*g_{t-i}",
               lambda G: sum((1 - 0.1 * i) * G[:, i] for i in range(11)),
               dict(generations=300, population=1000, max_complexity=60, time_limit=60)),
    SanityCase("poly_exp", "g_t^2 + g_{t-1} + 2*g_{t-2} + exp(g_{t-4})",
               lambda G: G[:, 0] ** 2 + G[:, 1] + 2 * G[:, 2] + np.exp(G[:, 4]),
               dict(generations=200, population=1000, max_complexity=30, time_limit=60)),
    SanityCase("momentum06", "m_t = 0.6*m_{t-1} + g_t",
               lambda G: sum(0.6 ** i * G[:, i] for i in range(LAGS)),
               dict(generations=300, population=1000, max_complexity=40, time_limit=50)),
    SanityCase("adam09", "Adam(beta1=0.9, beta2=0.999)", _adam,
               dict(generations=300, population=1000, max_complexity=30, time_limit=120)),
)


def run_case(case: SanityCase, engine: str = "operon", rows: int = 5000, seed: int = 0,
             **overrides) -> dict:
    G = gradient_windows(rows, seed)
    X, names = features(G)
    y = case.target(G)
    settings = {**case.settings, **overrides, "seed": seed}
    t0 = time.perf_counter()
    est = make_engine(engine, **settings).fit(X, y, names)
    best = max(est.pareto_front_, key=lambda e: e.r2)  # the sanity question is recovery: take the most accurate
    best, _ = fit_constants(best, X, y, names, seed=seed)  # operon searches in float32; polish in float64
    seconds = time.perf_counter() - t0
    return {"name": case.name, "target": case.formula, "equation": sp.sstr(best.expr), "r2": best.r2,
            "complexity": best.complexity, "seconds": seconds, "exact": bool(best.r2 >= case.exact_r2),
            "paper_r2": PAPER.get(case.name, (None, None))[0], "paper_seconds": PAPER.get(case.name, (None, None))[1]}


def run_sanity(names: Sequence[str] | None = None, engine: str = "operon", rows: int = 5000, seed: int = 0,
               progress: Callable[[dict], None] | None = None) -> list[dict]:
    chosen = [c for c in CASES if names is None or c.name in names]
    unknown = set(names or ()) - {c.name for c in CASES}
    if unknown:
        raise ValueError(f"unknown sanity case(s) {sorted(unknown)}; expected among {[c.name for c in CASES]}")
    rows_out = []
    for case in chosen:
        rows_out.append(run_case(case, engine, rows, seed))
        if progress:
            progress(rows_out[-1])
    return rows_out


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'case':<13} {'R²':>9} {'seconds':>8} {'exact':>6} {'paper R²':>9} {'paper s':>8}  equation"]
    for r in rows:
        paper_r2 = "" if r["paper_r2"] is None else f"{r['paper_r2']:.2f}"
        paper_s = "" if r["paper_seconds"] is None else str(r["paper_seconds"])
        lines.append(f"{r['name']:<13} {r['r2']:>9.6f} {r['seconds']:>8.1f} {str(r['exact']):>6} {paper_r2:>9} "
                     f"{paper_s:>8}  {r['equation'][:120]}")
    return "\n".join(lines)


def summary_json(rows: list[dict]) -> str:
    return json.dumps({"rows": [{k: r[k] for k in ("name", "r2", "seconds", "exact")} for r in rows]})
