"""``LSTMOptimizer``: a meta-trained coordinatewise LSTM as a ``torch.optim.Optimizer``.

    u = L2O(features(g))  over all coordinates of all parameters at once,   p ← p + u

All gradients are gathered into one flat vector (one ``cat``), the LSTM runs once on it, and the update
is scattered back with one ``_foreach_add_``. A parameter without a gradient this step counts as a zero
gradient, so the flat layout never changes. The LSTM state (80 floats per coordinate for a 2×20 RP)
lives in ``self.lstm_state`` (one ``LSTMState`` per chunk) and travels in ``state_dict``.

``chunk_size`` bounds the LSTM's temporaries on large models: the flat vector is processed in chunks of
that many coordinates (each with its own state), which changes nothing in the result.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from l2o.learned.checkpoint import l2o_from_checkpoint
from l2o.learned.lstm import CoordinateLSTM, LSTMState
from l2o.learned.features import FeatureState


class LSTMOptimizer(torch.optim.Optimizer):
    def __init__(self, params, checkpoint: str | os.PathLike | CoordinateLSTM, best: bool = True,
                 chunk_size: int | None = None):
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        l2o = checkpoint if isinstance(checkpoint, CoordinateLSTM) else l2o_from_checkpoint(checkpoint, best=best)
        super().__init__(params, defaults={})
        self.l2o = l2o.eval().requires_grad_(False)
        self.chunk_size = chunk_size
        self.lstm_state: list[LSTMState] | None = None

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self._params()
        grads = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
                 for p in params]
        flat = torch.cat(grads)
        if self.l2o.weights[0].device != flat.device or self.l2o.weights[0].dtype != flat.dtype:
            self.l2o.to(device=flat.device, dtype=flat.dtype)
        chunks = flat.split(self.chunk_size or flat.numel())
        if self.lstm_state is None:
            self.lstm_state = [self.l2o.init_state(c) for c in chunks]
        if len(self.lstm_state) != len(chunks):
            raise RuntimeError("the parameters changed size since the first step; build a new LSTMOptimizer")
        update = torch.empty_like(flat)
        for k, (c, u) in enumerate(zip(chunks, update.split(self.chunk_size or flat.numel()))):
            out, self.lstm_state[k] = self.l2o.step(c, self.lstm_state[k])
            u.copy_(out)
        torch._foreach_add_(params, [u.view_as(p) for u, p in zip(update.split([p.numel() for p in params]), params)])
        return loss

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["lstm_state"] = None if self.lstm_state is None else [
            {"features": s.features._asdict(), "hidden": list(s.hidden)} for s in self.lstm_state]
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        saved = state_dict.pop("lstm_state", None)
        super().load_state_dict(state_dict)
        if isinstance(saved, dict):  # written before chunking existed: one chunk
            saved = [saved]
        self.lstm_state = None if saved is None else [
            LSTMState(FeatureState(**s["features"]), tuple(t.clone() for t in s["hidden"])) for s in saved]
