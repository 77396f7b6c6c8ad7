"""What a rule over lagged features needs, and the one program of a step that every path runs.

An update rule's variables are named ``<feature>_<lag>`` (``mt_0``, ``gt_1``, ``g_ema90_0``), with the
features of the registry (``l2o.features.registry``) — the names distillation datasets use. ``RulePlan``
reads them and keeps only the state they need:

    the moments the features read (and the moments those read), one float each per coordinate;
    hist_<feature>  a ring buffer of past values, only for the lags that cannot be had otherwise.

A feature of the state alone (one that does not read g: mt, m, mhat, sqrt_vhat, the EMAs, m_p*) is known
at lag 1 for free — it is the same function of the state *before* this step's update — so a buffer holds
only its lags ≥ 2; ``g``, ``gt`` and other features that read g keep every lag ≥ 1 they use; a feature of
t alone (``step``) needs none. Values before the first step are 0, as in a freshly zeroed buffer.
Slot ``s mod K`` of a K-deep buffer holds the value of step s.

``program(plan)`` is the step as a list of statements over sympy expressions, in the order that lets
every path run it, in place or not:

    Load(key)                o_<key> = the moment's value before the step
    Let(var, expr)           first the values of the old state (lag 1, history writes), later those of
                             the new one; expressions over k_g, t, c1 = 1 − βᵗ, c0 = 1 − βᵗ⁻¹ (1 at t = 1)
    MomentUpdate(key, decay, input)   n_<key> = o_<key> + (1 − decay)·(input − o_<key>)
    Read(feature, lag, var)  a value from the ring buffer
    Rule(var)                the equation over the x_<feature>_<lag> variables
    Write(feature, expr)     the newest buffered value, into the slot of the oldest
    Update(var)              p ← p + lr · var

Renderers turn it into C (``l2o.optim.codegen``), torch source (the exported optimizer, the compiled
flat path) or evaluate it on tensors (``l2o.features.step``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import sympy as sp
import torch

from l2o.features import registry as reg
from l2o.features.registry import Feature, Moment

_VARIABLE = re.compile(r"^(?P<feature>[a-z][a-z0-9_]*?)_(?P<lag>\d+)$")
MAX_LAG = 100

K_G, T, C1, C0 = (sp.Symbol(n, real=True) for n in ("k_g", "t", "c1", "c0"))
SCALAR_SYMBOLS = frozenset({"t", "c1", "c0"})  # numbers of the step, not tensors


def parse_variable(name: str) -> tuple[str, int]:
    """``"g_ema90_3"`` → ``("g_ema90", 3)``; a ValueError for names that are not ``<feature>_<lag>``."""
    match = _VARIABLE.match(name)
    if not match:
        raise ValueError(f"variable {name!r} is not <feature>_<lag> with a feature among {tuple(reg.FEATURES)}")
    feature, lag = match["feature"], int(match["lag"])
    if feature not in reg.FEATURES:
        raise ValueError(f"variable {name!r} is not <feature>_<lag> with a feature among {tuple(reg.FEATURES)}")
    if lag > MAX_LAG:
        raise ValueError(f"variable {name!r}: lag above {MAX_LAG}")
    return feature, lag


def feature_columns(features, lags) -> list[str]:
    """``<feature>_<lag>`` names, lag-major: every feature at lag 0, then at lag 1, …"""
    return [f"{f}_{lag}" for lag in lags for f in features]


class Load(NamedTuple):
    key: str


class Let(NamedTuple):
    var: str
    expr: sp.Expr


class MomentUpdate(NamedTuple):
    key: str
    decay: sp.Expr
    input: sp.Expr


class Read(NamedTuple):
    feature: str
    lag: int
    var: str


class Rule(NamedTuple):
    var: str


class Write(NamedTuple):
    feature: str
    expr: sp.Expr


class Update(NamedTuple):
    var: str


def old(key: str) -> sp.Symbol:
    return sp.Symbol(f"o_{key}", real=True)


def new(key: str) -> sp.Symbol:
    return sp.Symbol(f"n_{key}", real=True)


def x(feature: str, lag: int) -> sp.Symbol:
    return sp.Symbol(f"x_{feature}_{lag}", real=True)


@dataclass(frozen=True)
class RulePlan:
    """The state and feature work an equation's variables call for (β, ε as in RNNprop)."""

    variables: tuple[str, ...]
    beta: float = 0.95
    eps: float = 1e-8
    # the registry entries the plan reads, so that a plan (and what is cached per plan) changes with them
    entries: tuple[Feature | Moment, ...] = field(init=False, repr=False)

    def __post_init__(self):
        for name in self.variables:
            parse_variable(name)
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {self.beta}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps}")
        object.__setattr__(self, "entries", tuple(reg.FEATURES[f] for f in self.lags) + tuple(
            reg.MOMENTS[m] for m in self.moments))

    @classmethod
    def of(cls, expr: sp.Expr, beta: float = 0.95, eps: float = 1e-8) -> "RulePlan":
        return cls(tuple(sorted(str(s) for s in expr.free_symbols)), beta, eps)

    @classmethod
    def of_features(cls, names, beta: float = 0.95, eps: float = 1e-8) -> "RulePlan":
        """The plan of lag 0 of ``names`` (what a learned optimizer reads)."""
        unknown = [n for n in names if n not in reg.FEATURES]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; expected among {tuple(reg.FEATURES)}")
        return cls(tuple(f"{n}_0" for n in names), beta, eps)

    @cached_property
    def lags(self) -> dict[str, tuple[int, ...]]:
        """feature → the lags read, in registry order."""
        out: dict[str, set[int]] = {}
        for name in self.variables:
            f, lag = parse_variable(name)
            out.setdefault(f, set()).add(lag)
        return {f: tuple(sorted(out[f])) for f in reg.FEATURES if f in out}

    def feature(self, name: str) -> Feature:
        return reg.FEATURES[name]

    @cached_property
    def moments(self) -> tuple[str, ...]:
        """The moments to keep, each after the ones its input reads, else in registry order."""
        needed: set[str] = set()
        todo = [m for f in self.lags for m in reg.FEATURES[f].needs]
        while todo:
            m = todo.pop()
            if m not in needed:
                needed.add(m)
                todo += reg.MOMENTS[m].needs
        order: list[str] = []

        def visit(m: str) -> None:
            if m in order:
                return
            for dep in sorted(reg.MOMENTS[m].needs, key=list(reg.MOMENTS).index):
                visit(dep)
            order.append(m)

        for m in reg.MOMENTS:
            if m in needed:
                visit(m)
        return tuple(order)

    @cached_property
    def history(self) -> dict[str, tuple[int, int]]:
        """feature → (first lag kept in the buffer, depth), for features that need a buffer."""
        out = {}
        for f, lags in self.lags.items():
            feat = reg.FEATURES[f]
            first = 1 if feat.reads_gradient else 2
            if not feat.clock and lags[-1] >= first:
                out[f] = (first, lags[-1] - first + 1)
        return out

    @property
    def state_keys(self) -> tuple[str, ...]:
        return self.moments + tuple(f"hist_{f}" for f in self.history)

    @property
    def moment_keys(self) -> tuple[str, ...]:
        """The state keys that are not ring buffers (one value per coordinate)."""
        return self.moments

    @cached_property
    def buffered_reads(self) -> tuple[tuple[str, int], ...]:
        """(feature, lag) of every value the rule reads from a ring buffer, feature by feature."""
        return tuple((f, lag) for f in self.history for lag in self.lags[f] if lag >= self.history[f][0])

    def state_floats(self) -> int:
        """Floats of state per coordinate."""
        return len(self.moments) + sum(d for _, d in self.history.values())

    def init_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = {"step": torch.tensor(0.0)}
        for key in self.state_keys:
            depth = self.history[key[5:]][1] if key.startswith("hist_") else None
            state[key] = torch.zeros((depth, *p.shape) if depth else p.shape, dtype=p.dtype, device=p.device)
        return state

    # -- scalars shared by every path ----------------------------------------------------------------
    def corrections(self, t: int) -> tuple[float, float]:
        """Bias corrections 1 − βᵗ at step t and t − 1 (1.0 where the step is 0: zero state stays zero)."""
        c = lambda s: 1.0 - self.beta ** s if s > 0 else 1.0  # noqa: E731
        return c(t), c(t - 1)

    def slot(self, feature: str, step: int) -> int:
        return step % self.history[feature][1]

    # -- the program ---------------------------------------------------------------------------------
    def value(self, feature: str, snapshot: str) -> sp.Expr:
        """The feature's expression at the new state ("new": lag 0) or the old one ("old": lag 1)."""
        f = reg.FEATURES[feature]
        return self._bind(f.value, snapshot)

    def _bind(self, expr: sp.Expr, snapshot: str) -> sp.Expr:
        state = new if snapshot == "new" else old
        subs = {reg.s(m): state(m) for m in self.moments}
        subs.update({reg.BETA: sp.Float(self.beta), reg.EPS: sp.Float(self.eps), reg.g: K_G,
                     reg.c: C1 if snapshot == "new" else C0, reg.t: T if snapshot == "new" else T - 1})
        return expr.xreplace(subs)

    @cached_property
    def program(self) -> tuple:
        out: list = [Load(m) for m in self.moments]
        stateful = [f for f, lags in self.lags.items() if not reg.FEATURES[f].reads_gradient
                    and not reg.FEATURES[f].clock and (1 in lags or f in self.history)]
        for f in stateful:  # the old state's values come first: in-place paths then move the state
            out.append(Let(f"o_x_{f}", self.value(f, "old")))
        for m in self.moments:
            moment = reg.MOMENTS[m]
            decay = sp.Float(self.beta) if moment.decay == reg.BETA else moment.decay
            out.append(MomentUpdate(m, decay, self._bind(moment.input, "new")))
        writes = []
        for f, lags in self.lags.items():
            feat = reg.FEATURES[f]
            for lag in lags:
                var = f"x_{f}_{lag}"
                if feat.clock:
                    out.append(Let(var, feat.value.xreplace({reg.t: T if lag == 0 else sp.Max(T - lag, 0)})))
                elif lag == 0:
                    out.append(Let(var, self.value(f, "new")))
                elif lag == 1 and not feat.reads_gradient:
                    out.append(Let(var, sp.Symbol(f"o_x_{f}", real=True)))
                else:
                    out.append(Read(f, lag, var))
            if f in self.history:
                value = (sp.Symbol(f"o_x_{f}", real=True) if not feat.reads_gradient else
                         x(f, 0) if 0 in lags else self.value(f, "new"))
                writes.append(Write(f, value))
        return tuple(out + [Rule("k_u"), *writes, Update("k_u")])

    def scalar_vars(self) -> set[str]:
        """Program variables that are numbers, not tensors: the step's scalars and features of t alone."""
        return set(SCALAR_SYMBOLS) | {f"x_{f}_{lag}" for f, lags in self.lags.items() if reg.FEATURES[f].clock
                                      for lag in lags}
