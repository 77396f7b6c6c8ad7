"""``SymbolicOptimizer``: an update rule written as an equation, as a ``torch.optim.Optimizer``.

    p ← p + lr · f(x),   x = { <feature>_<lag> }   (features of l2o.learned.features, lag 0 = now)

``f`` is any equation over those variables (a distilled rule, or a hand-written one such as
``-0.001*mt_0``); its sign is part of the rule, as for the learned optimizers it comes from. The
per-parameter state is exactly what ``f`` needs (``RulePlan``): the moments its features use and ring
buffers for the lags that cannot be recomputed — e.g. ``mt_0``, ``mt_1``, ``gt_0`` keep two buffers,
as many as Adam.

Implementations, one signature (``symbolic_update``), all equal to the sympy reference in float64:
``single`` (a loop over tensors; the form meta-tuning differentiates), ``foreach`` (torch's multi-tensor
kernels), ``compile`` (the state of all of a group's tensors in flat buffers, the whole step one
``torch.compile``d function over them: on a GPU, one fused kernel between a gradient gather and a
multi-tensor add), ``native`` (one generated C loop per tensor on CPU: state, features and rule fused
into one pass). ``impl=None`` picks native on CPU where it builds, else foreach.

``SymbolicRule`` is the same rule as a ``LearnedOptimizer`` over one flat vector, its float constants
learnable: the meta-trainer tunes it exactly as it trains the LSTMs (stage 3).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sympy as sp
import torch
from torch import nn

from l2o.expr import Equation, TorchExpression, parse_equation
from l2o.features import RulePlan, features, features_foreach, write_history
from l2o.meta.interface import LearnedOptimizer
from l2o.optim import native_rule
from l2o.optim.codegen import render_flat
from l2o.optim.group import checked, closure_loss, decay

IMPLS = ("single", "foreach", "compile", "native")


def as_expr(equation: str | sp.Expr | Equation) -> sp.Expr:
    if isinstance(equation, Equation):
        return equation.expr
    if isinstance(equation, str):
        return parse_equation(equation)
    if isinstance(equation, sp.Expr):
        return equation
    raise TypeError(f"equation must be text, a sympy expression or an Equation, got {type(equation).__name__}")


def _single(plan: RulePlan, rule: nn.Module, p: torch.Tensor, g: torch.Tensor, state: dict, lr: float) -> dict:
    inputs, new = features(plan, g, state)
    p.add_(rule(inputs, like=g), alpha=lr)
    return new


def _same_kind(params: list[torch.Tensor], states: list[dict]) -> list[list[int]]:
    """Indices of tensors that share a device, dtype and step count (what multi-tensor kernels need)."""
    groups = defaultdict(list)
    for i, (p, st) in enumerate(zip(params, states)):
        groups[(p.device, p.dtype, int(st["step"]))].append(i)
    return list(groups.values())


class FlatRule:
    """The ``compile`` path: ``render_flat``'s function, compiled once per optimizer, and per set of
    tensors (same device, dtype and step) flat buffers that hold their state — each tensor's state
    entries are views into them, so ``state_dict`` and the other paths see ordinary per-tensor state."""

    def __init__(self, plan: RulePlan, expr: sp.Expr):
        namespace = {"torch": torch}
        exec(render_flat(plan, expr), namespace)  # noqa: S102 — our own generated source, from a parsed rule
        self.plan = plan
        self.fn = torch.compile(namespace["rule_flat"])
        self.sets: dict[tuple[int, ...], _FlatSet] = {}

    def step_cached(self, params: list[torch.Tensor], grads: list[torch.Tensor], lr: float) -> bool:
        """One step when these tensors already have their flat set (the usual case: the same tensors
        every step); False when they do not. No per-tensor Python work: on a GPU the launches of a
        per-tensor loop would cost more than the kernels."""
        flat = self.sets.get(tuple(map(id, params)))
        if flat is None:
            return False
        flat.step(self.fn, grads, lr)
        return True

    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict], lr: float) -> None:
        for idx in _same_kind(params, states):
            ps = [params[i] for i in idx]
            key = tuple(map(id, ps))
            flat = self.sets.get(key)
            if flat is None:
                flat = _FlatSet(self.plan, ps, [states[i] for i in idx])
                self.sets = {k: v for k, v in self.sets.items() if not set(k) & set(key)}  # their state moved
                self.sets[key] = flat
            flat.step(self.fn, [grads[i] for i in idx], lr)


class _FlatSet:
    def __init__(self, plan: RulePlan, params: list[torch.Tensor], states: list[dict]):
        self.plan, self.params = plan, params
        kind = {"dtype": params[0].dtype, "device": params[0].device}
        sizes = [p.numel() for p in params]
        offsets = [sum(sizes[:k]) for k in range(len(sizes))]
        total = sum(sizes)

        def views(flat: torch.Tensor, lead: tuple[int, ...] = ()) -> list[torch.Tensor]:
            return [flat[..., o:o + n].view(*lead, *p.shape) for p, o, n in zip(params, offsets, sizes)]

        self.g = torch.empty(total, **kind)  # the gradients gathered, then the update
        self.g_views = views(self.g)
        self.buffers = {}
        for key in plan.state_keys:  # gathered from the tensors' current state (zeros when new)
            depth = (plan.history[key[5:]][1],) if key.startswith("hist_") else ()
            self.buffers[key] = torch.empty(*depth, total, **kind)
            for st, view in zip(states, views(self.buffers[key], depth)):
                view.copy_(st[key])
                st[key] = view
        self.steps = int(states[0]["step"])
        self.count = torch.tensor(float(self.steps))  # one step counter, shared by the states
        for st in states:
            st["step"] = self.count
        self.t = torch.zeros((), dtype=torch.promote_types(kind["dtype"], torch.float32), device=kind["device"])
        self.moments = [self.buffers[k] for k in plan.moment_keys]  # in flat_arguments' order
        self.reads = [(self.buffers[f"hist_{f}"], f, lag) for f, lag in plan.buffered_reads]

    def step(self, fn, grads: list[torch.Tensor], lr: float) -> None:
        plan, t = self.plan, self.steps + 1
        rows = [hist[plan.slot(f, t - lag)] for hist, f, lag in self.reads]
        torch._foreach_copy_(self.g_views, grads)
        self.t.fill_(float(t))
        fn(self.g, self.t, *self.moments, *rows)
        torch._foreach_add_(self.params, self.g_views, alpha=lr)
        self.count.fill_(float(t))
        self.steps = t


def symbolic_update(plan: RulePlan, rule: TorchExpression, params: list[torch.Tensor], grads: list[torch.Tensor],
                    states: list[dict[str, torch.Tensor]], lr: float, impl: str = "foreach",
                    flat: FlatRule | None = None) -> None:
    """One step of ``params`` (in place) with their ``states``; ``flat``: the compile path's ``FlatRule``
    (kept by the caller: a new one compiles anew)."""
    if impl == "single":
        for p, g, st in zip(params, grads, states):
            st.update(_single(plan, rule, p, g, st, lr))
    elif impl == "compile":
        (flat or FlatRule(plan, rule.expr)).step(params, grads, states, lr)
    elif impl == "foreach":
        for idx in _same_kind(params, states):
            sts = [states[i] for i in idx]
            inputs, writes = features_foreach(plan, [grads[i] for i in idx], sts)
            update = rule.foreach(inputs, like=[grads[i] for i in idx])
            write_history(sts, writes)
            torch._foreach_add_([params[i] for i in idx], update, alpha=lr)
    elif impl == "native":
        lib = native_rule.library(plan, rule.expr)
        for p, g, st in zip(params, grads, states):
            if lib is None or not native_rule.usable(p, g):
                st.update(_single(plan, rule, p, g, st, lr))
                continue
            t = int(st["step"]) + 1
            native_rule.step_tensor(lib, plan, p, g, st, lr, t)
            st["step"].fill_(float(t))
    else:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


class SymbolicOptimizer(torch.optim.Optimizer):
    """The rule ``p ← p + lr · f(features)`` (see the module docstring); ``lr`` scales the equation's step.

    Args:
        params: tensors or param groups (each group may set its own ``lr``).
        equation: text (through the whitelist parser), a sympy expression or an ``Equation``.
        lr: multiplier of the equation's output (1.0 applies the rule as written).
        beta, eps: the moment decay and denominator guard of the features (RNNprop: 0.95, 1e-8).
        impl: "single", "foreach", "compile", "native", or None (native on CPU where it builds, else foreach).
        weight_decay: decoupled, as AdamW: each step first scales p by 1 - lr·weight_decay.
        maximize: follow the gradient up (the rule sees -grad).
    """

    def __init__(self, params, equation: str | sp.Expr | Equation, lr: float = 1.0, beta: float = 0.95,
                 eps: float = 1e-8, impl: str | None = None, weight_decay: float = 0.0, maximize: bool = False):
        defaults = checked(lr, weight_decay)
        if impl is not None and impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS} or None, got {impl!r}")
        expr = as_expr(equation)
        self.plan = RulePlan.of(expr, beta, eps)
        self.rule = TorchExpression(expr)
        self.impl = impl
        self._flat: dict[int, FlatRule] = {}  # per param group, for the compile path
        super().__init__(params, {**defaults, "maximize": bool(maximize)})

    def _impl_for(self, params: list[torch.Tensor]) -> str:
        if self.impl:
            return self.impl
        cpu = all(p.device.type == "cpu" for p in params)
        return "native" if cpu and native_rule.library(self.plan, self.rule.expr) is not None else "foreach"

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure_loss(closure)
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if any(g.is_sparse for g in grads):
                raise RuntimeError("SymbolicOptimizer does not support sparse gradients")
            if group.get("maximize", False):
                grads = torch._foreach_neg(grads)
            decay(params, group)
            impl = self._impl_for(params)
            if impl == "compile":
                if index not in self._flat:
                    self._flat[index] = FlatRule(self.plan, self.rule.expr)
                if self._flat[index].step_cached(params, grads, group["lr"]):
                    continue
            states = []
            for p in params:
                if not self.state[p]:
                    self.state[p].update(self.plan.init_state(p))
                states.append(self.state[p])
            symbolic_update(self.plan, self.rule, params, grads, states, group["lr"], impl, self._flat.get(index))
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for flat in self._flat.values():  # the loaded state is gathered into new flat buffers at the next step
            flat.sets.clear()

    def state_bytes(self) -> int:
        """Bytes of per-parameter state held now (the step counters included)."""
        return sum(t.numel() * t.element_size() for st in self.state.values() for t in st.values()
                   if isinstance(t, torch.Tensor))

    def workspace_bytes(self) -> int:
        """Bytes held besides the state: the compile path's flat gradient buffers (one float a parameter)."""
        return sum(s.g.numel() * s.g.element_size() for flat in self._flat.values() for s in flat.sets.values())


class SymbolicRule(LearnedOptimizer):
    """A rule as a ``LearnedOptimizer`` over one flat vector; its float constants are learnable, each
    through its relative change (``TorchExpression(learn_constants="relative")``)."""

    def __init__(self, equation: str | sp.Expr | Equation, beta: float = 0.95, eps: float = 1e-8,
                 tunable: bool = True):
        super().__init__()
        expr = as_expr(equation)
        self.plan = RulePlan.of(expr, beta, eps)
        self.rule = TorchExpression(expr, learn_constants="relative")
        self.config = {"equation": sp.sstr(expr), "beta": beta, "eps": eps}
        if tunable and not self.rule.constants.numel():
            raise ValueError(f"{sp.sstr(expr)} has no float constant to tune")

    def init_state(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.plan.init_state(like)

    def step(self, g: torch.Tensor, state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        inputs, new = features(self.plan, g, state)
        return self.rule(inputs, like=g), new

    def detach_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return state  # the features depend on gradients only, which the trainer already detaches

    def to_sympy(self) -> sp.Expr:
        return self.rule.to_sympy()
