"""Choosing one equation from a Pareto front: the one rule every caller uses.

Two ways, set by ``SelectConfig.by``:

- ``"r2"`` — on the validation rows kept from the search (``meta["validation_r2"]``), PySR-style:
  ``rule="score"`` takes the largest drop in log-loss per unit of complexity among equations whose
  validation loss (1 − R²) is within 1.5× of the lowest; ``rule="accuracy"`` takes the simplest
  equation whose validation R² reaches ``r2_threshold`` (failing that, the most accurate).
- ``"rollout"`` — by how the candidates optimize: each candidate's update rule runs as a
  ``SymbolicOptimizer`` on short rollouts of ``meta_valid`` optimizees (``losses``: one final loss per
  candidate, inf where it diverged); the choice is the simplest candidate whose final loss is within
  ``tolerance`` (relative) of the best. R² does not predict how a rule optimizes: a rule can match the
  recorded rows and run away off them.

Either way only update rules of at most ``max_complexity`` nodes (as run, the output scaling included)
are candidates (``eligible``); the pipeline counts a rule as meta-tuning will leave it, its decay factor
included, so that the final rule keeps the bound too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from l2o.config import option
from l2o.expr import Equation


@dataclass(frozen=True)
class SelectConfig:
    by: str = option("rollout", "rollout (how each candidate optimizes on meta_valid) or r2 (validation rows); "
                                "without an optimizee to roll out on (an uploaded dataset), r2")
    tolerance: float = option(0.05, "rollout: the simplest candidate within this fraction of the best final loss "
                                    "(the geometric mean over its rollouts)")
    rule: str = option("score", "r2: score (PySR's: log-loss drop per node) or accuracy (simplest reaching "
                                "r2_threshold)")
    r2_threshold: float = option(0.99, "r2 with rule accuracy: the validation R² asked for")
    seeds: int = option(3, "rollout: meta_valid optimizees per candidate, dealt round the task and "
                           "meta_train.family in turn")
    steps: int | None = option(None, "rollout: steps per rollout; unset: the meta-training horizon")
    max_candidates: int = option(24, "rollout: at most this many candidates, the simplest first")
    max_complexity: int | None = option(20, "the largest update rule (nodes, as run: output scaling and "
                                            "meta-tuning's decay factor included) selection may choose; "
                                            "unset: no bound")

    def __post_init__(self):
        if self.by not in ("rollout", "r2"):
            raise ValueError(f"select.by must be rollout or r2, got {self.by!r}")
        if self.rule not in ("score", "accuracy"):
            raise ValueError(f"select.rule must be score or accuracy, got {self.rule!r}")
        if self.tolerance < 0 or self.seeds < 1 or self.max_candidates < 1 or (self.steps is not None and self.steps < 1):
            raise ValueError("tolerance >= 0; seeds, max_candidates and steps >= 1")
        if self.max_complexity is not None and self.max_complexity < 1:
            raise ValueError("select.max_complexity must be >= 1 (or unset)")


def _validation_loss(e: Equation) -> float:
    r2 = e.meta.get("validation_r2")
    return 1.0 - r2 if r2 is not None and math.isfinite(r2) else math.inf


def choose_by_r2(front: Sequence[Equation], rule: str = "score", r2_threshold: float = 0.99) -> Equation:
    """The equation of ``front`` (simplest first) that ``rule`` picks on the validation rows."""
    if not front:
        raise ValueError("an empty front has nothing to choose from")
    loss = {id(e): _validation_loss(e) for e in front}
    if rule == "accuracy":
        good = [e for e in front if loss[id(e)] <= 1.0 - r2_threshold]
        return good[0] if good else min(front, key=lambda e: loss[id(e)])
    best_loss = min(loss.values())
    if len(front) == 1 or not math.isfinite(best_loss):
        return front[0]
    eligible = [e for e in front if loss[id(e)] <= 1.5 * best_loss + 1e-300]
    scores, prev = {}, None
    for e in front:  # PySR's score: −Δ log(loss) / Δ complexity against the next-simpler equation
        if prev is not None and e.complexity > prev.complexity:
            scores[id(e)] = -(math.log(max(loss[id(e)], 1e-300)) - math.log(max(loss[id(prev)], 1e-300))) / (
                e.complexity - prev.complexity)
        prev = e
    pool = [e for e in eligible if id(e) in scores] or eligible
    return max(pool, key=lambda e: scores.get(id(e), -math.inf))


def choose_by_rollout(complexities: Sequence[int], losses: Sequence[float], tolerance: float = 0.05) -> int:
    """Index of the simplest candidate whose final loss is within ``tolerance`` of the best finite one
    (ties in complexity: the lower loss); a ValueError when every candidate diverged."""
    finite = [(c, loss, i) for i, (c, loss) in enumerate(zip(complexities, losses)) if math.isfinite(loss)]
    if not finite:
        raise ValueError("every candidate diverged in its rollouts")
    best = min(loss for _, loss, _ in finite)
    bound = best * (1 + tolerance) if best >= 0 else best * (1 - tolerance)
    return min((c, loss, i) for c, loss, i in finite if loss <= bound)[2]


def choose(front: Sequence[Equation], config: SelectConfig, losses: Sequence[float] | None = None) -> int:
    """Index into ``front`` of the equation ``config`` picks; ``losses`` (rollout final losses, one per
    candidate) are needed when ``config.by == "rollout"``."""
    if config.by == "rollout":
        if losses is None or len(losses) != len(front):
            raise ValueError("selection by rollout needs one final loss per candidate")
        return choose_by_rollout([e.complexity for e in front], losses, config.tolerance)
    chosen = choose_by_r2(front, config.rule, config.r2_threshold)
    return next(i for i, e in enumerate(front) if e is chosen)


def eligible(candidates: Sequence[dict], config: SelectConfig,
             final: Callable[[dict], int] | None = None) -> list[dict]:
    """The fitted candidates (simplest first) that ``config`` may choose from: update rules of at most
    ``max_complexity`` nodes and, by rollout, the first ``max_candidates`` of them. ``final`` gives the
    size a candidate's rule will have when it is finally run (meta-tuning multiplies it by a decay
    factor); by default its own."""
    cap = config.max_complexity
    size = final or (lambda c: c["update_rule"]["complexity"])
    pool = [c for c in candidates if cap is None or size(c) <= cap]
    if not pool:
        simplest = min((size(c) for c in candidates), default=None)
        raise ValueError(f"no candidate has an update rule of at most {cap} nodes (the simplest has {simplest}"
                         f"{'' if final is None else ' with the decay factor of meta-tuning'}); "
                         "raise select.max_complexity or unset it")
    return pool[:config.max_candidates] if config.by == "rollout" else pool


def pool_fronts(fronts: Sequence[Sequence[Equation]]) -> list[Equation]:
    """The Pareto front (complexity, training loss) of several searches of the same rows."""
    from l2o.distill.engines import _pareto

    seen: dict[str, Equation] = {}
    for front in fronts:
        for e in front:
            seen.setdefault(e.text, e)
    return _pareto(list(seen.values()))
