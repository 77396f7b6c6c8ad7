"""The step program of a ``RulePlan`` run on tensors: one tensor at a time, or lists of tensors.

``features`` (one tensor, functional: the meta-tuner differentiates through the rule's constants and must
not see state change in place) and ``features_foreach`` (a list of tensors of one step count, with
``torch._foreach_*`` kernels, the state moved in place) run the statements of ``plan.program``; their
expressions are compiled once per plan into a ``Tape`` of the one sympy→torch table (a subexpression
shared by several features is computed once). ``FeatureExtractor`` is the lag-0 form the learned
optimizers read. Values that depend on the step's scalars alone (``step_k``) stay Python numbers.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import torch

from l2o.expr.tape import Tape
from l2o.features.plan import Let, Load, MomentUpdate, Read, RulePlan, Write


@functools.lru_cache(maxsize=256)
def compiled(plan: RulePlan, mode: str) -> tuple[Tape, tuple]:
    """The plan's tape and, per statement, (statement, end of its instructions, slot of its value)."""
    tape = Tape(mode, frozenset(plan.scalar_vars()))
    steps = []
    for st in plan.program:
        expr = st.expr if isinstance(st, (Let, Write)) else st.input if isinstance(st, MomentUpdate) else None
        root = tape.add(expr) if expr is not None else None
        steps.append((st, len(tape), root))
    return tape, tuple(steps)


def _scalars(plan: RulePlan, t: int) -> dict[str, float]:
    c1, c0 = plan.corrections(t)
    return {"t": float(t), "c1": c1, "c0": c0}


def _inputs(env: dict[str, Any]) -> dict[str, Any]:
    """The rule's inputs, ``<feature>_<lag>``, from the program's ``x_<feature>_<lag>`` variables."""
    return {k[2:]: v for k, v in env.items() if k.startswith("x_")}


def features(plan: RulePlan, g: torch.Tensor, state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Inputs ``{"<feature>_<lag>": tensor or number}`` of one tensor's gradient ``g``, and the new state
    (new tensors; the step counter too)."""
    t = int(state["step"]) + 1
    inputs, new = features_at(plan, g, state, t)
    new["step"] = torch.tensor(float(t))
    return inputs, new


def features_at(plan: RulePlan, g: torch.Tensor, state: dict[str, torch.Tensor], t: int,
                program: tuple[Tape, tuple] | None = None) -> tuple[dict, dict]:
    """``features`` at step ``t`` (``program``: ``compiled(plan, "tensor")``, if the caller keeps it); the
    new state has no step counter."""
    tape, steps = program or compiled(plan, "tensor")
    env: dict[str, Any] = {"k_g": g, **_scalars(plan, t)}
    values: list = [None] * len(tape)
    new: dict[str, torch.Tensor] = {}
    pos = 0
    for st, end, root in steps:
        if isinstance(st, Load):
            env[f"o_{st.key}"] = state[st.key]
            continue
        tape.run(values, env, pos, end)
        pos = end
        if isinstance(st, Let):
            env[st.var] = values[root]
        elif isinstance(st, MomentUpdate):
            value = values[root]
            value = value if isinstance(value, torch.Tensor) else torch.full_like(g, float(value))
            env[f"n_{st.key}"] = new[st.key] = torch.lerp(env[f"o_{st.key}"], value, 1.0 - float(st.decay))
        elif isinstance(st, Read):
            env[st.var] = state[f"hist_{st.feature}"][plan.slot(st.feature, t - st.lag)]
        elif isinstance(st, Write):
            first = plan.history[st.feature][0]
            hist = state[f"hist_{st.feature}"].clone()
            hist[plan.slot(st.feature, t - first + 1)] = values[root]
            new[f"hist_{st.feature}"] = hist
    return _inputs(env), new


def features_foreach(plan: RulePlan, grads: list[torch.Tensor], states: list[dict[str, torch.Tensor]]
                     ) -> tuple[dict[str, list[torch.Tensor] | float], list]:
    """``features`` for tensors of one step count, with foreach kernels; the states change in place.

    Returns the inputs and the history writes, which ``write_history`` applies once the rule has read
    the buffers (the newest value takes the slot of the oldest, which the rule still reads).
    """
    tape, steps = compiled(plan, "foreach")
    t = int(states[0]["step"]) + 1
    env: dict[str, Any] = {"k_g": grads, **_scalars(plan, t)}
    values: list = [None] * len(tape)
    columns: list[list[torch.Tensor]] = []  # the state's own lists, until they move
    writes = []
    pos = 0
    for st, end, root in steps:
        if isinstance(st, Load):
            env[f"o_{st.key}"] = column = [s[st.key] for s in states]
            columns.append(column)
            continue
        tape.run(values, env, pos, end)
        pos = end
        if isinstance(st, Let):
            value = values[root]
            if any(value is column for column in columns):  # the state itself, about to move in place
                value = [v.clone() for v in value]
            env[st.var] = value
        elif isinstance(st, MomentUpdate):
            value = values[root]
            value = value if isinstance(value, (list, tuple)) else [torch.full_like(g, float(value)) for g in grads]
            column = env[f"o_{st.key}"]
            torch._foreach_lerp_(column, value, 1.0 - float(st.decay))
            env[f"n_{st.key}"] = column
            columns.remove(column)  # from now on it holds the new value, which later values may share
        elif isinstance(st, Read):
            env[st.var] = [s[f"hist_{st.feature}"][plan.slot(st.feature, t - st.lag)] for s in states]
        elif isinstance(st, Write):
            first = plan.history[st.feature][0]
            value = values[root]
            value = value if isinstance(value, (list, tuple)) else [torch.full_like(g, float(value)) for g in grads]
            writes.append((st.feature, plan.slot(st.feature, t - first + 1), value))
    for s in states:
        s["step"].fill_(float(t))
    return _inputs(env), writes


def write_history(states: list[dict[str, torch.Tensor]], writes) -> None:
    """Apply the history writes of ``features_foreach``."""
    for f, slot, values in writes:
        torch._foreach_copy_([s[f"hist_{f}"][slot] for s in states], values)


class FeatureState(NamedTuple):
    step: int
    moments: dict[str, torch.Tensor]  # each (N,)


class FeatureExtractor:
    """The named features at lag 0 over one flat vector of coordinates, stacked feature-major as
    (len(names), N) — what the LSTM cells read; keeps only the moments they need."""

    def __init__(self, names: tuple[str, ...], beta: float = 0.95, eps: float = 1e-8):
        if not names:
            raise ValueError("need at least one feature")
        self.names, self.beta, self.eps = tuple(names), beta, eps
        self.plan = RulePlan.of_features(self.names, beta, eps)
        self.program = compiled(self.plan, "tensor")  # kept here: torch.compile traces no cache lookup

    def init(self, like: torch.Tensor) -> FeatureState:
        return FeatureState(0, {m: torch.zeros_like(like) for m in self.plan.moments})

    def state_floats(self) -> int:
        return len(self.plan.moments)

    def update(self, g: torch.Tensor, state: FeatureState) -> tuple[torch.Tensor, FeatureState]:
        """Features at the new step, shape (len(names), N), and the new state."""
        t = state.step + 1
        inputs, new = features_at(self.plan, g, state.moments, t, self.program)
        rows = [v if isinstance(v, torch.Tensor) else torch.full_like(g, float(v))
                for v in (inputs[f"{n}_0"] for n in self.names)]
        return torch.stack(rows), FeatureState(t, new)
