"""Per-coordinate input features of learned optimizers, over one flat vector of all coordinates.

With gradient g (of every coordinate of every tensor, flattened together) and step t = 1, 2, …:

    m_t = β m + (1−β) g        v_t = β v + (1−β) g²        m̂ = m/(1−βᵗ)   v̂ = v/(1−βᵗ)
    mt  = m̂ / (√v̂ + ε)         gt  = g / (√v̂ + ε)                            (RNNprop, β = 0.95)
    g, m, mhat, sqrt_vhat      raw gradient, raw and bias-corrected momentum, √v̂
    g_ema50, g_ema90, g_ema99  e_d ← d·e + (1−d)·g for d = 0.5, 0.9, 0.99 (no bias correction)
    mt_ema90, mt_ema98, mt_ema995
                               u_d ← d·u + (1−d)·mt for d = 0.9, 0.98, 0.995 (no bias correction): mt
                               over the last ~10, 50, 200 steps, the long memory an LSTM keeps in its cell
    step                       t / 1000
    m_p2, m_p25, m_p3          m̂ / (v̂_p^{1/p} + ε) with v_p ← β v_p + (1−β)|g|^p, v̂_p = v_p/(1−βᵗ),
                               p = 2, 2.5, 3: momentum normalised by the p-norm of recent gradients
                               (m_p2 equals mt)

``FeatureExtractor(names)`` keeps only the state its features need and returns them stacked as
(len(names), N) — feature-major, as the LSTM cells want it; its state is a ``FeatureState`` NamedTuple returned by ``update``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

FEATURES = ("mt", "gt", "g", "m", "mhat", "sqrt_vhat", "g_ema50", "g_ema90", "g_ema99", "step",
            "m_p2", "m_p25", "m_p3", "mt_ema90", "mt_ema98", "mt_ema995")
EMA_DECAYS = {"g_ema50": 0.5, "g_ema90": 0.9, "g_ema99": 0.99}
MT_EMA_DECAYS = {"mt_ema90": 0.9, "mt_ema98": 0.98, "mt_ema995": 0.995}
P_NORMS = {"m_p2": 2.0, "m_p25": 2.5, "m_p3": 3.0}
_NEEDS_V = {"mt", "gt", "sqrt_vhat", *MT_EMA_DECAYS}


class FeatureState(NamedTuple):
    step: int
    m: torch.Tensor  # (N,) EMA of g
    v: torch.Tensor | None  # (N,) EMA of g², when a feature needs it
    emas: torch.Tensor | None  # (len(ema features), N)
    vps: torch.Tensor | None  # (len(p-norm features), N): EMAs of |g|^p
    mt_emas: torch.Tensor | None = None  # (len(mt EMA features), N): EMAs of mt


def log_and_sign(g: torch.Tensor, k: float = 5.0) -> torch.Tensor:
    """DM's preprocessing (Andrychowicz et al. 2016): rows clamp(log|g|/k, min=−1) and clamp(g·eᵏ, −1, 1).

    Returns (2, *g.shape). log|0| = −inf is clamped to −1, so every input gives finite features.
    """
    log = torch.log(g.abs()).div(k).clamp(min=-1.0)
    return torch.stack([log, (g * math.exp(k)).clamp(-1.0, 1.0)])


class FeatureExtractor:
    """Computes the named features; ``beta`` and ``eps`` as in RNNprop."""

    def __init__(self, names: tuple[str, ...], beta: float = 0.95, eps: float = 1e-8):
        unknown = [n for n in names if n not in FEATURES]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; expected among {FEATURES}")
        if not names:
            raise ValueError("need at least one feature")
        self.names, self.beta, self.eps = tuple(names), beta, eps
        self.ema_names = [n for n in names if n in EMA_DECAYS]
        self.p_names = [n for n in names if n in P_NORMS]
        self.mt_ema_names = [n for n in names if n in MT_EMA_DECAYS]
        self.needs_v = bool(_NEEDS_V & set(names))

    def init(self, like: torch.Tensor) -> FeatureState:
        z = torch.zeros_like(like)
        rows = lambda k: torch.zeros((k, *like.shape), dtype=like.dtype, device=like.device) if k else None  # noqa: E731
        return FeatureState(0, z, z.clone() if self.needs_v else None, rows(len(self.ema_names)),
                            rows(len(self.p_names)), rows(len(self.mt_ema_names)))

    def update(self, g: torch.Tensor, state: FeatureState) -> tuple[torch.Tensor, FeatureState]:
        """Features at the new step, shape (len(names), N), and the new state."""
        b, eps, t = self.beta, self.eps, state.step + 1
        corr = 1.0 - b ** t
        m = torch.lerp(g, state.m, b)  # β m + (1−β) g
        v = torch.lerp(g * g, state.v, b) if state.v is not None else None
        emas = vps = None
        if state.emas is not None:
            d = torch.tensor([EMA_DECAYS[n] for n in self.ema_names], dtype=g.dtype, device=g.device)[:, None]
            emas = d * state.emas + (1 - d) * g
        if state.vps is not None:
            p = torch.tensor([P_NORMS[n] for n in self.p_names], dtype=g.dtype, device=g.device)[:, None]
            vps = b * state.vps + (1 - b) * g.abs().unsqueeze(0) ** p
        mhat = m / corr
        denom = (v / corr).sqrt() + eps if v is not None else None
        mt = mhat / denom if denom is not None else None
        mt_emas = None
        if state.mt_emas is not None:
            d = torch.tensor([MT_EMA_DECAYS[n] for n in self.mt_ema_names], dtype=g.dtype, device=g.device)[:, None]
            mt_emas = d * state.mt_emas + (1 - d) * mt
        out = []
        for name in self.names:
            if name == "mt":
                out.append(mt)
            elif name == "gt":
                out.append(g / denom)
            elif name == "g":
                out.append(g)
            elif name == "m":
                out.append(m)
            elif name == "mhat":
                out.append(mhat)
            elif name == "sqrt_vhat":
                out.append(denom - eps)
            elif name == "step":
                out.append(torch.full_like(g, t / 1000.0))
            elif name in EMA_DECAYS:
                out.append(emas[self.ema_names.index(name)])
            elif name in MT_EMA_DECAYS:
                out.append(mt_emas[self.mt_ema_names.index(name)])
            else:
                i, p = self.p_names.index(name), P_NORMS[name]
                out.append(mhat / ((vps[i] / corr) ** (1.0 / p) + eps))
        return torch.stack(out), FeatureState(t, m, v, emas, vps, mt_emas)
