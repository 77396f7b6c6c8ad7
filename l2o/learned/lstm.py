"""Coordinatewise LSTM optimizers: DM (Andrychowicz et al. 2016), RP (RNNprop, Lv et al. 2017), RP_si.

Every coordinate of every optimizee tensor is one column of a single batch (N columns; tensors are
feature-major, (features, N), so every row is contiguous). Per step:

    DM:     x = LogAndSign(g)                     (2, N)
    RP:     x = ELU(W₀ · features + b₀)           (pre, N)     features: mt, gt (+ optional tokens)
    RP_si:  as RP on (mt, gt, m_p3)
    hˡ, cˡ = LSTM cell ˡ(x or hˡ⁻¹, hˡ, cˡ)       gates of each cell from one matmul of [input, h]
    out   = w · h^L + b
    update = 0.01 · out (DM)   or   0.01 · tanh(s · out) (RP, RP_si; s = 1 or a learned scale)

The update is added to the parameters (its sign is learned). ``step`` is pure: it takes and returns an
explicit ``LSTMState``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from l2o.features import FeatureExtractor, FeatureState
from l2o.learned.cell import elu_linear, lstm_cell
from l2o.config import from_dict, option
from l2o.meta.interface import LearnedOptimizer

MODELS = ("dm", "rp", "rp_si")

# Coordinates per chunk on CPU: a chunk's state and temporaries stay in cache through the whole network
# (an RP step on 24,380 coordinates: 4.15 ms in chunks of 8192, 5.5 ms in one call). A multiple of 64,
# a whole number of the kernels' 64-byte vectors in float32 and float64, so that chunking changes no bit.
CPU_CHUNK = 8192


def step_in_chunks(step, g: torch.Tensor, states: list, size: int) -> torch.Tensor:
    """``step`` (e.g. ``CoordinateLSTM.raw_step``) over ``g`` in chunks of ``size`` coordinates, chunk k
    with ``states[k]``, which is replaced by its new state; returns the outputs in one vector."""
    out = torch.empty_like(g)
    for k, (gk, ok) in enumerate(zip(g.split(size), out.split(size))):
        result, states[k] = step(gk, states[k])
        ok.copy_(result)
    return out


def log_and_sign(g: torch.Tensor, k: float = 5.0) -> torch.Tensor:
    """DM's preprocessing (Andrychowicz et al. 2016): rows clamp(log|g|/k, min=−1) and clamp(g·eᵏ, −1, 1).

    Returns (2, *g.shape). log|0| = −inf is clamped to −1, so every input gives finite features.
    """
    log = torch.log(g.abs()).div(k).clamp(min=-1.0)
    return torch.stack([log, (g * math.exp(k)).clamp(-1.0, 1.0)])


_PRESETS = {  # the fields each model sets where the config leaves them None
    "dm": dict(features=("g",), preprocess="log_and_sign", tanh=False),
    "rp": dict(features=("mt", "gt"), preprocess="elu_linear", tanh=True),
    "rp_si": dict(features=("mt", "gt", "m_p3"), preprocess="elu_linear", tanh=True),
}


@dataclass(frozen=True)
class LSTMConfig:
    model: str = option("rp", "learned optimizer: dm, rp or rp_si (it sets the fields left unset)")
    features: tuple[str, ...] | None = option(
        None, "input features (l2o.features); unset: the model's (rp: mt,gt; rp_si: mt,gt,m_p3; dm: g)")
    preprocess: str | None = option(None, "elu_linear (RP) or log_and_sign (DM); unset: the model's")
    pre_hidden: int = option(20, "width of the ELU pre-layer (RP)")
    hidden: tuple[int, ...] = option((20, 20), "LSTM stack widths")
    output_scale: float = option(0.01, "update = output_scale · (tanh(s · out) or out)")
    tanh: bool | None = option(None, "squash the output (RP) or not (DM); unset: the model's")
    learned_scale: bool = option(False, "learn s in tanh(s · out), initialised at 1")
    beta: float = option(0.95, "RNNprop's moment decay of the features")
    eps: float = option(1e-8, "denominators of the features")
    log_sign_k: float = option(5.0, "DM's LogAndSign k")

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; expected one of {', '.join(MODELS)}")

    def resolved(self) -> "LSTMConfig":
        """The config with every unset field taken from the model's preset."""
        preset = _PRESETS[self.model]
        return dataclasses.replace(self, **{k: v for k, v in preset.items() if getattr(self, k) is None})


def lstm_config(model: str = "rp", **overrides: Any) -> LSTMConfig:
    """The config of ``model`` with the paper's defaults, fields replaced by ``overrides``."""
    for key in ("features", "hidden"):
        if key in overrides:
            overrides[key] = tuple(overrides[key])
    return LSTMConfig(model=model, **overrides).resolved()


class LSTMState(NamedTuple):
    features: FeatureState
    hidden: tuple[torch.Tensor, ...]  # (h¹, c¹, h², c², …), each (width, N): feature-major


class CoordinateLSTM(LearnedOptimizer, kind="lstm"):
    """A coordinatewise LSTM optimizer (DM, RP or RP_si, by config)."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "CoordinateLSTM":
        return cls(from_dict(LSTMConfig, config))

    def __init__(self, config: LSTMConfig):
        super().__init__()
        config = config.resolved()
        if config.preprocess not in ("elu_linear", "log_and_sign"):
            raise ValueError(f"unknown preprocess {config.preprocess!r}")
        if not config.hidden or min(config.hidden) < 1:
            raise ValueError(f"hidden must be positive widths, got {config.hidden}")
        if config.preprocess == "log_and_sign" and config.features != ("g",):
            raise ValueError("log_and_sign preprocessing reads the raw gradient only: features=('g',)")
        self.config = config
        self.extractor = FeatureExtractor(config.features, config.beta, config.eps)
        if config.preprocess == "elu_linear":
            self.pre = nn.Linear(len(config.features), config.pre_hidden)
            width = config.pre_hidden
        else:
            self.pre, width = None, 2
        # One (4·hidden, input + hidden) matrix per cell, gate rows ordered [input, forget, output, cell].
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for h in config.hidden:
            bound = 1.0 / math.sqrt(h)
            self.weights.append(nn.Parameter(torch.empty(4 * h, width + h).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(4 * h).uniform_(-bound, bound)))
            width = h
        self.out = nn.Linear(width, 1)
        self.impl: str | None = None  # cell kernels: "native", "torch", or None = native where usable
        self.log_scale = nn.Parameter(torch.zeros(())) if config.learned_scale else None

    def init_state(self, like: torch.Tensor) -> LSTMState:
        n = like.shape[0]
        hidden = []
        for h in self.config.hidden:
            z = torch.zeros(h, n, dtype=like.dtype, device=like.device)
            hidden += [z, z.clone()]
        return LSTMState(self.extractor.init(like), tuple(hidden))

    def detach_state(self, state: LSTMState) -> LSTMState:
        return LSTMState(state.features, tuple(t.detach() for t in state.hidden))

    def inputs(self, g: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, FeatureState]:
        """The network's inputs (features, N) for gradient ``g`` and the new feature state."""
        if self.pre is None:
            fstate = FeatureState(state.features.step + 1, state.features.moments)
            return log_and_sign(g, self.config.log_sign_k), fstate
        return self.extractor.update(g, state.features)

    def network(self, x: torch.Tensor, hidden: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Raw output (N,) and new hidden state from feature-major inputs ``x`` (features, N)."""
        if self.pre is not None:
            x = elu_linear(x, self.pre.weight, self.pre.bias, self.impl)
        new = []
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            x, c = lstm_cell(x, hidden[2 * layer], hidden[2 * layer + 1], w, b, self.impl)
            new += [x, c]
        return torch.addmm(self.out.bias[:, None], self.out.weight, x).squeeze(0), tuple(new)

    def raw_step(self, g: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        """The network's raw output (N,) before squashing and scaling, and the new state."""
        x, fstate = self.inputs(g, state)
        out, hidden = self.network(x, state.hidden)
        return out, LSTMState(fstate, hidden)

    def squash(self, raw: torch.Tensor) -> torch.Tensor:
        """The update from a raw output: output_scale · tanh(s · raw), or output_scale · raw."""
        if self.config.tanh:
            raw = torch.tanh(raw * self.log_scale.exp() if self.log_scale is not None else raw)
        return self.config.output_scale * raw

    def squash_expr(self, raw: Any) -> Any:
        """``squash`` of a sympy expression: a rule fitted to raw outputs as the update it implies."""
        import sympy as sp

        if self.config.tanh:
            scale = float(self.log_scale.exp()) if self.log_scale is not None else 1.0
            raw = sp.tanh(raw * sp.Float(scale) if scale != 1.0 else raw)
        return sp.Float(self.config.output_scale) * raw

    def step(self, g: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        raw, state = self.raw_step(g, state)
        return self.squash(raw), state

    def state_floats_per_coordinate(self) -> int:
        return 2 * sum(self.config.hidden) + self.extractor.state_floats()

    def describe(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.config), "num_weights": sum(p.numel() for p in self.parameters())}
