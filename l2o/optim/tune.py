"""Stage 3 — meta-tuning a rule: its float constants learned by the same ``MetaTrainer`` as the LSTMs.

Also the forms a rule is tuned in: the paper's large-scale ψ = −Σ_feature Σ_lag W·γ·tanh(x/γ)
(``psi_rule``), a step-size schedule exp(−k·t/1000) with k learned (``with_decay``), and reading a rule
from text or a JSON file (``load_equation``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import sympy as sp
import torch

from l2o.config import to_dict
from l2o.expr import Equation, parse_equation
from l2o.features import RulePlan
from l2o.optim.symbolic import SymbolicRule


def load_equation(spec: str | os.PathLike) -> Equation:
    """An equation from text, an ``Equation`` JSON file, or a stage's ``equations.json``/``equation.json``
    (its ``update_rule``: the chosen equation turned into the step the learned optimizer takes)."""
    path = Path(spec)
    if isinstance(spec, os.PathLike) or (len(str(spec)) < 4096 and path.suffix == ".json" and path.is_file()):
        doc: Any = json.loads(path.read_text())
        if "update_rule" in doc:
            doc = doc["update_rule"]
        elif "equation" not in doc:
            raise ValueError(f"{path}: neither an equation nor a distillation result (no 'update_rule')")
        return Equation.from_dict(doc)
    return Equation(parse_equation(str(spec)))


def psi_rule(features: list[str], lags: list[int], weight: float = 1e-3, gamma: float = 1.0) -> sp.Expr:
    """The paper's large-scale form ψ = −Σ_feature Σ_lag W·γ·tanh(x/γ) as an equation, ready to meta-tune.

    Each term starts at W·(1 + k/100) and γ·(1 + k/100) for its index k: equal floats would be one
    constant to ``TorchExpression``, and every term must be free to move on its own.
    """
    if not features or not lags:
        raise ValueError("psi needs at least one feature and one lag")
    terms = []
    for k, (f, lag) in enumerate((f, lag) for f in features for lag in lags):
        w, g = sp.Float(weight * (1 + k / 100)), sp.Float(gamma * (1 + k / 100))
        terms.append(-w * g * sp.tanh(sp.Symbol(f"{f}_{lag}", real=True) / g))
    expr = sp.Add(*terms)
    RulePlan.of(expr)  # unknown features fail here
    return expr


def with_decay(equation: Equation, k0: float) -> Equation:
    """``equation`` times exp(−k·step_0), k starting at ``k0`` (a float constant, so meta-tuning learns it)."""
    if not 0 < k0 < 1e3:
        raise ValueError(f"the decay rate must be in (0, 1000), got {k0}")
    expr = equation.expr * sp.exp(-sp.Float(k0) * sp.Symbol("step_0", real=True))
    return Equation(expr, meta={**equation.meta, "decay_init": k0, "undecayed": equation.text})


def meta_tune(source: Equation, task, config, beta: float = 0.95, eps: float = 1e-8, callback=None,
              max_seconds: float | None = None) -> tuple[Equation, Any]:
    """Stage 3: ``source``'s constants meta-learned on ``task`` by ``MetaTrainer`` under ``config``.

    The source constants are the first candidate, so the result is never worse than the source on the
    evaluation split. Returns the tuned equation (its ``meta`` records the before/after evaluation
    losses and the run) and the trainer's final ``TrainState``.
    """
    from l2o.meta import MetaTrainer

    rule = SymbolicRule(source, beta=beta, eps=eps).to(device=task.device, dtype=task.dtype)
    trainer = MetaTrainer(rule, task, config)
    before = trainer.evaluate(config.horizons[-1])
    trainer.state.best_eval = before
    state = trainer.fit(callback, max_seconds=max_seconds)
    after = trainer.evaluate(config.horizons[-1])
    if not after <= before:  # fit() keeps the best constants, the source's among them; never end worse
        with torch.no_grad():
            rule.rule.delta.zero_()
        after = before
    tuned = Equation(rule.to_sympy(), meta={
        **source.meta, "source_equation": source.text, "task": task.describe(),
        "meta_config": to_dict(config), "beta": beta, "eps": eps, "epochs": state.epoch,
        "eval_loss_before": before, "eval_loss_after": after})
    return tuned, state
