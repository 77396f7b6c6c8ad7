"""What an update rule over lagged features needs, and those features computed from minimal state.

An equation's variables are named ``<feature>_<lag>`` (``mt_0``, ``gt_1``, ``g_ema90_0``) with the
features of ``l2o.learned.features`` — the names distillation datasets use. ``RulePlan`` reads them and
keeps only the state they need:

    m     EMA of g (β)          for mt, m, mhat, m_p*          v    EMA of g² (β)   for mt, gt, sqrt_vhat
    ema*  EMAs of g (0.5/0.9/0.99), one per g_ema* feature     vp*  EMA of |g|^p, one per m_p* feature
    mt_ema*  EMAs of mt (0.9/0.98/0.995), one per mt_ema* feature (they need m and v)
    hist_<feature>  a ring buffer of past values, only for the lags that cannot be had otherwise

A feature that is a function of that state (mt, m, mhat, sqrt_vhat, g_ema*, m_p*, mt_ema*) is known at lag 1
for free — it is the same function of the state *before* this step's update — so a buffer holds only
its lags ≥ 2. ``g`` and ``gt`` keep every lag ≥ 1 they use; ``step`` needs none. Values before the first
step are 0, as in a freshly zeroed buffer. Slot ``s mod K`` of a K-deep buffer holds the value of step s.

``features`` computes them for one tensor, functionally (the meta-tuner differentiates through the
rule's constants and must not see state change in place); ``features_foreach`` does the same for a
list of tensors of one step count with ``torch._foreach_*`` kernels, updating the state in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import sympy as sp
import torch

from l2o.learned.features import EMA_DECAYS, FEATURES, MT_EMA_DECAYS, P_NORMS

_NEEDS_M = {"mt", "m", "mhat", *P_NORMS, *MT_EMA_DECAYS}
_NEEDS_V = {"mt", "gt", "sqrt_vhat", *MT_EMA_DECAYS}
STATEFUL = {"mt", "m", "mhat", "sqrt_vhat", *EMA_DECAYS, *P_NORMS, *MT_EMA_DECAYS}  # known at lag 1 from the old state
_VARIABLE = re.compile(r"^(?P<feature>[a-z][a-z0-9_]*?)_(?P<lag>\d+)$")
MAX_LAG = 100


def parse_variable(name: str) -> tuple[str, int]:
    """``"g_ema90_3"`` → ``("g_ema90", 3)``; a ValueError for names that are not ``<feature>_<lag>``."""
    match = _VARIABLE.match(name)
    if not match or match["feature"] not in FEATURES:
        raise ValueError(f"variable {name!r} is not <feature>_<lag> with a feature among {FEATURES}")
    lag = int(match["lag"])
    if lag > MAX_LAG:
        raise ValueError(f"variable {name!r}: lag above {MAX_LAG}")
    return match["feature"], lag


@dataclass(frozen=True)
class RulePlan:
    """The state and feature work an equation's variables call for (β, ε as in RNNprop)."""

    variables: tuple[str, ...]
    beta: float = 0.95
    eps: float = 1e-8

    def __post_init__(self):
        for name in self.variables:
            parse_variable(name)
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {self.beta}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps}")

    @classmethod
    def of(cls, expr: sp.Expr, beta: float = 0.95, eps: float = 1e-8) -> "RulePlan":
        return cls(tuple(sorted(str(s) for s in expr.free_symbols)), beta, eps)

    @cached_property
    def lags(self) -> dict[str, tuple[int, ...]]:
        out: dict[str, set[int]] = {}
        for name in self.variables:
            f, lag = parse_variable(name)
            out.setdefault(f, set()).add(lag)
        return {f: tuple(sorted(out[f])) for f in FEATURES if f in out}

    @property
    def needs_m(self) -> bool:
        return bool(_NEEDS_M & set(self.lags))

    @property
    def needs_v(self) -> bool:
        return bool(_NEEDS_V & set(self.lags))

    @property
    def emas(self) -> tuple[str, ...]:
        return tuple(f for f in EMA_DECAYS if f in self.lags)

    @property
    def pnorms(self) -> tuple[str, ...]:
        return tuple(f for f in P_NORMS if f in self.lags)

    @property
    def mt_emas(self) -> tuple[str, ...]:
        return tuple(f for f in MT_EMA_DECAYS if f in self.lags)

    @cached_property
    def history(self) -> dict[str, tuple[int, int]]:
        """feature → (first lag kept in the buffer, depth), for features that need a buffer."""
        out = {}
        for f, lags in self.lags.items():
            first = 2 if f in STATEFUL else 1
            if f != "step" and lags[-1] >= first:
                out[f] = (first, lags[-1] - first + 1)
        return out

    @property
    def state_keys(self) -> tuple[str, ...]:
        return (("m",) * self.needs_m + ("v",) * self.needs_v + self.emas + tuple(f"v{f}" for f in self.pnorms)
                + self.mt_emas + tuple(f"hist_{f}" for f in self.history))

    @property
    def moment_keys(self) -> tuple[str, ...]:
        """The state keys that are not ring buffers (one value per coordinate)."""
        return tuple(k for k in self.state_keys if not k.startswith("hist_"))

    @cached_property
    def buffered_reads(self) -> tuple[tuple[str, int], ...]:
        """(feature, lag) of every value the rule reads from a ring buffer, feature by feature."""
        return tuple((f, lag) for f in self.history for lag in self.lags[f] if lag >= self.history[f][0])

    def state_floats(self) -> int:
        """Floats of state per coordinate."""
        return len(self.state_keys) - len(self.history) + sum(d for _, d in self.history.values())

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


def _feature(name: str, plan: RulePlan, g, m, v, emas, vps, corr: float, t: int):
    """Feature ``name`` from one state snapshot (lag 0: the new state and g; lag 1: the old state)."""
    eps = plan.eps
    if name == "step":
        return torch.full_like(g if g is not None else m, t / 1000.0)
    if name == "g":
        return g
    if name in EMA_DECAYS or name in MT_EMA_DECAYS:
        return emas[name]
    if name == "m":
        return m
    mhat = m / corr if m is not None else None
    if name == "mhat":
        return mhat
    if name in P_NORMS:
        return mhat / ((vps[name] / corr) ** (1.0 / P_NORMS[name]) + eps)
    root = (v / corr).sqrt()
    if name == "sqrt_vhat":
        return root
    return (mhat if name == "mt" else g) / (root + eps)


def features(plan: RulePlan, g: torch.Tensor, state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Inputs ``{"<feature>_<lag>": tensor}`` of one tensor's gradient ``g``, and the new state (new tensors)."""
    t = int(state["step"]) + 1
    inputs, new = features_at(plan, g, state, t, *plan.corrections(t))
    new["step"] = torch.tensor(float(t))
    return inputs, new


def features_at(plan: RulePlan, g: torch.Tensor, state: dict[str, torch.Tensor], t, corr, corr_old
                ) -> tuple[dict, dict]:
    """``features`` at step ``t`` with the bias corrections given; the new state has no step counter."""
    b = plan.beta
    new = {}
    if plan.needs_m:
        new["m"] = torch.lerp(g, state["m"], b)
    if plan.needs_v:
        new["v"] = torch.lerp(g * g, state["v"], b)
    for f in plan.emas:
        d = EMA_DECAYS[f]
        new[f] = d * state[f] + (1 - d) * g
    for f in plan.pnorms:
        new[f"v{f}"] = b * state[f"v{f}"] + (1 - b) * g.abs() ** P_NORMS[f]
    mt = None
    if plan.mt_emas:
        mt = _feature("mt", plan, g, new["m"], new["v"], new, None, corr, t)
        for f in plan.mt_emas:
            d = MT_EMA_DECAYS[f]
            new[f] = d * state[f] + (1 - d) * mt
    old_vps = {f: state[f"v{f}"] for f in plan.pnorms}
    new_vps = {f: new[f"v{f}"] for f in plan.pnorms}
    inputs = {}
    for f, lags in plan.lags.items():
        first, depth = plan.history.get(f, (None, 0))
        now = mt if f == "mt" and mt is not None else _feature(f, plan, g, new.get("m"), new.get("v"), new, new_vps,
                                                                corr, t)
        before = None
        if f in STATEFUL and (1 in lags or f in plan.history):
            before = _feature(f, plan, None, state.get("m"), state.get("v"), state, old_vps, corr_old, t - 1)
        for lag in lags:
            if lag == 0:
                inputs[f"{f}_{lag}"] = now
            elif f == "step":
                inputs[f"{f}_{lag}"] = torch.full_like(g, max(t - lag, 0) / 1000.0)
            elif lag == 1 and f in STATEFUL:
                inputs[f"{f}_{lag}"] = before
            else:
                inputs[f"{f}_{lag}"] = state[f"hist_{f}"][plan.slot(f, t - lag)]
        if depth:
            hist = state[f"hist_{f}"].clone()
            s = t - first + 1  # the step whose value sits at lag `first` from the next step on
            hist[plan.slot(f, s)] = before if f in STATEFUL else now
            new[f"hist_{f}"] = hist
    return inputs, new


def features_foreach(plan: RulePlan, grads: list[torch.Tensor], states: list[dict[str, torch.Tensor]]
                     ) -> tuple[dict[str, list[torch.Tensor]], list]:
    """``features`` for tensors of one step count, with foreach kernels; the states change in place.

    Returns the inputs and the history writes, which ``write_history`` applies once the rule has read
    the buffers (the newest value takes the slot of the oldest, which the rule still reads).
    """
    b, t = plan.beta, int(states[0]["step"]) + 1
    corr, corr_old = plan.corrections(t)
    col = lambda key: [s[key] for s in states] if key in states[0] else None  # noqa: E731
    snapshot = lambda: (col("m"), col("v"), {f: col(f) for f in (*plan.emas, *plan.mt_emas)},  # noqa: E731
                        {f: col(f"v{f}") for f in plan.pnorms})
    stateful_old = [f for f, lags in plan.lags.items() if f in STATEFUL and (1 in lags or f in plan.history)]
    before = _foreach_features(plan, stateful_old, None, *snapshot(), corr_old, copy=True)
    if plan.needs_m:
        torch._foreach_lerp_(col("m"), grads, 1 - b)
    if plan.needs_v:
        torch._foreach_lerp_(col("v"), torch._foreach_mul(grads, grads), 1 - b)
    for f in plan.emas:
        torch._foreach_lerp_(col(f), grads, 1 - EMA_DECAYS[f])
    for f in plan.pnorms:
        torch._foreach_lerp_(col(f"v{f}"), torch._foreach_pow(torch._foreach_abs(grads), P_NORMS[f]), 1 - b)
    for s in states:
        s["step"].fill_(float(t))
    now = _foreach_features(plan, [f for f in plan.lags if f != "step"], grads, *snapshot(), corr, copy=False)
    if plan.mt_emas:  # now[mt_ema*] are the state tensors themselves: the lerps below update them too
        mt = now["mt"] if "mt" in now else _foreach_features(plan, ["mt"], grads, *snapshot(), corr, copy=False)["mt"]
        for f in plan.mt_emas:
            torch._foreach_lerp_(col(f), mt, 1 - MT_EMA_DECAYS[f])
    inputs = {}
    for f, lags in plan.lags.items():
        for lag in lags:
            if f == "step":
                inputs[f"{f}_{lag}"] = [torch.full_like(g, max(t - lag, 0) / 1000.0) for g in grads]
            elif lag == 0:
                inputs[f"{f}_0"] = now[f]
            elif lag == 1 and f in STATEFUL:
                inputs[f"{f}_1"] = before[f]
            else:
                inputs[f"{f}_{lag}"] = [s[f"hist_{f}"][plan.slot(f, t - lag)] for s in states]
    writes = [(f, plan.slot(f, t - first + 1), before[f] if f in STATEFUL else now[f])
              for f, (first, _) in plan.history.items()]
    return inputs, writes


def write_history(states: list[dict[str, torch.Tensor]], writes) -> None:
    """Apply the history writes of ``features_foreach``."""
    for f, slot, values in writes:
        torch._foreach_copy_([s[f"hist_{f}"][slot] for s in states], values)


def _foreach_features(plan, names, grads, ms, vs, emas, vps, corr, copy):
    """Foreach ``_feature`` for several features of one state snapshot; ``copy``: never alias the state."""
    eps, out = plan.eps, {}
    mhat = torch._foreach_div(ms, corr) if ms is not None and set(names) & {"mt", "mhat", *P_NORMS} else None
    root = torch._foreach_sqrt(torch._foreach_div(vs, corr)) if vs is not None and set(names) & _NEEDS_V else None
    for f in names:
        if f == "g":
            out[f] = grads
        elif f in EMA_DECAYS or f in MT_EMA_DECAYS:
            out[f] = [x.clone() for x in emas[f]] if copy else emas[f]
        elif f == "m":
            out[f] = [x.clone() for x in ms] if copy else ms
        elif f == "mhat":
            out[f] = mhat
        elif f == "sqrt_vhat":
            out[f] = root
        elif f in P_NORMS:
            d = torch._foreach_add(torch._foreach_pow(torch._foreach_div(vps[f], corr), 1.0 / P_NORMS[f]), eps)
            out[f] = torch._foreach_div(mhat, d)
        else:  # mt, gt
            out[f] = torch._foreach_div(mhat if f == "mt" else grads, torch._foreach_add(root, eps))
    return out
