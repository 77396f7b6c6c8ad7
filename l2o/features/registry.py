"""The one registry of per-coordinate features: each declared once, as maths, with the state it needs.

A feature is a value per coordinate at step t = 1, 2, …, written as a sympy expression over

    g       this step's gradient                 t   the step count
    c       the bias correction 1 − βᵗ            s_<moment>   a moment's value after this step's update

and the constants ``BETA`` and ``EPS`` (RNNprop's β and ε, set per optimizer). A *moment* is one float of
state per coordinate, an exponential moving average new = d·old + (1−d)·input, with input an expression
over g, c, t and the other moments' new values. From these entries everything else is derived — the
state an update rule keeps, lag 1 of a feature from the state before the update, the ring buffers of
deeper lags, and every implementation: the LSTMs' feature extractor, ``SymbolicOptimizer``'s single and
foreach paths, its compiled and C kernels and the exported optimizer file (``l2o.features.plan``).

Built in (β = 0.95 as in RNNprop):

    mt = m̂/(√v̂ + ε)   gt = g/(√v̂ + ε)   with m ← β m + (1−β) g,  v ← β v + (1−β) g²,  m̂ = m/c,  v̂ = v/c
    g, m, mhat, sqrt_vhat                      raw gradient, raw and bias-corrected momentum, √v̂
    g_ema50, g_ema90, g_ema99                  EMAs of g with decay 0.5, 0.9, 0.99 (no bias correction)
    step                                       t / 1000
    m_p2, m_p25, m_p3                          m̂ / ((v_p/c)^{1/p} + ε), v_p ← β v_p + (1−β)|g|^p: momentum
                                               normalised by the p-norm of recent gradients (m_p2 equals mt)
    mt_ema90, mt_ema98, mt_ema995              EMAs of mt with decay 0.9, 0.98, 0.995: mt over the last
                                               ~10, 50, 200 steps, the long memory an LSTM keeps in its cell

``register(feature)`` adds one (``registered`` for the length of a ``with`` block); a feature that
depends on t alone must be 0 at t = 0, the value every feature has before the first step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import sympy as sp

g = sp.Symbol("g", real=True)
t = sp.Symbol("t", positive=True)
c = sp.Symbol("c", real=True)
BETA = sp.Symbol("beta", positive=True)
EPS = sp.Symbol("eps", positive=True)
SCALARS = frozenset({g, t, c, BETA, EPS})


def s(moment: str) -> sp.Symbol:
    """The symbol of a moment's value (after this step's update) in feature and moment expressions."""
    return sp.Symbol(f"s_{moment}", real=True)


@dataclass(frozen=True)
class Moment:
    """One float of state per coordinate: new = decay·old + (1 − decay)·input."""

    name: str
    decay: sp.Expr  # a number in [0, 1) or BETA
    input: sp.Expr  # over g, c, t and other moments' new values

    @property
    def needs(self) -> frozenset[str]:
        return _moments_in(self.input)


@dataclass(frozen=True)
class Feature:
    """A per-coordinate value; ``moments`` are the ones it brings (shared ones are registered apart)."""

    name: str
    value: sp.Expr  # over g, c, t and moments
    doc: str = ""
    moments: tuple[Moment, ...] = ()

    @property
    def needs(self) -> frozenset[str]:
        return _moments_in(self.value)

    @property
    def reads_gradient(self) -> bool:
        """Whether the value reads g itself; a feature of the state alone is known at lag 1 for free."""
        return g in self.value.free_symbols

    @property
    def clock(self) -> bool:
        """A function of t alone: every lag is the value at an earlier t, no state at all."""
        return not self.reads_gradient and not self.needs


def _moments_in(expr: sp.Expr) -> frozenset[str]:
    return frozenset(x.name[2:] for x in expr.free_symbols if x.name.startswith("s_"))


MOMENTS: dict[str, Moment] = {}
FEATURES: dict[str, Feature] = {}


def _check(feature: Feature, moments: dict[str, Moment]) -> None:
    allowed = SCALARS | {s(m) for m in moments}
    for what, expr in [(f"feature {feature.name}", feature.value), *((f"moment {m.name}", m.input)
                                                                     for m in feature.moments)]:
        stray = expr.free_symbols - allowed
        if stray:
            raise ValueError(f"{what} reads unknown symbols {sorted(map(str, stray))}")
    for m in feature.moments:
        if m.name in m.needs:
            raise ValueError(f"moment {m.name} reads its own new value")
        if not (m.decay == BETA or (m.decay.is_Number and 0 <= float(m.decay) < 1)):
            raise ValueError(f"moment {m.name}: decay must be BETA or a number in [0, 1)")
    if feature.clock and sp.simplify(feature.value.subs(t, 0)) != 0:
        raise ValueError(f"feature {feature.name} depends on t alone and must be 0 at t = 0")
    if not feature.name.isidentifier() or not feature.name[0].isalpha() or not feature.name.islower():
        raise ValueError(f"feature name {feature.name!r}: lower-case letters, digits and _")


def register(feature: Feature) -> Feature:
    """Add ``feature`` (and the moments it brings) to the registry."""
    if feature.name in FEATURES:
        raise ValueError(f"feature {feature.name!r} is already registered")
    clash = [m.name for m in feature.moments if m.name in MOMENTS]
    if clash:
        raise ValueError(f"moment(s) {clash} are already registered")
    moments = {**MOMENTS, **{m.name: m for m in feature.moments}}
    _check(feature, moments)
    MOMENTS.update({m.name: m for m in feature.moments})
    FEATURES[feature.name] = feature
    return feature


@contextlib.contextmanager
def registered(feature: Feature) -> Iterator[Feature]:
    """``feature`` in the registry for the length of the block (tests, experiments)."""
    register(feature)
    try:
        yield feature
    finally:
        FEATURES.pop(feature.name, None)
        for m in feature.moments:
            MOMENTS.pop(m.name, None)


def ema(name: str, decay, input: sp.Expr) -> Moment:
    return Moment(name, sp.sympify(decay), input)


# -- the built-in features ----------------------------------------------------------------------------
_mhat = s("m") / c
_root = sp.sqrt(s("v") / c)
_mt = _mhat / (_root + EPS)
_SHARED = (ema("m", BETA, g), ema("v", BETA, g ** 2))
_P_NORMS = {"m_p2": 2, "m_p25": sp.Rational(5, 2), "m_p3": 3}
_G_EMAS = {"g_ema50": sp.Rational(1, 2), "g_ema90": sp.Rational(9, 10), "g_ema99": sp.Rational(99, 100)}
_MT_EMAS = {"mt_ema90": sp.Rational(9, 10), "mt_ema98": sp.Rational(49, 50), "mt_ema995": sp.Rational(199, 200)}

MOMENTS.update({m.name: m for m in _SHARED})
for _feature in (
    Feature("mt", _mt, "m̂/(√v̂ + ε), RNNprop's normalised momentum"),
    Feature("gt", g / (_root + EPS), "g/(√v̂ + ε), RNNprop's normalised gradient"),
    Feature("g", g, "the raw gradient"),
    Feature("m", s("m"), "EMA of g (β), no bias correction"),
    Feature("mhat", _mhat, "bias-corrected EMA of g"),
    Feature("sqrt_vhat", _root, "√v̂, the root of the bias-corrected EMA of g²"),
    *(Feature(name, s(name), f"EMA of g, decay {float(d)}", (ema(name, d, g),)) for name, d in _G_EMAS.items()),
    Feature("step", t / 1000, "t/1000, the step count"),
    *(Feature(name, _mhat / ((s(f"v{name}") / c) ** (1 / sp.sympify(p)) + EPS),
              f"m̂ over the {p}-norm of recent gradients", (ema(f"v{name}", BETA, sp.Abs(g) ** p),))
      for name, p in _P_NORMS.items()),
    *(Feature(name, s(name), f"EMA of mt, decay {float(d)}", (ema(name, d, _mt),)) for name, d in _MT_EMAS.items()),
):
    register(_feature)
BUILTIN = tuple(FEATURES)  # the built-in names, in registry order (the order columns and state follow)
