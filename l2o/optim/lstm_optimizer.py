"""``LSTMOptimizer``: a meta-trained coordinatewise LSTM as a ``torch.optim.Optimizer``.

    u = L2O(features(g))  over all coordinates of all parameters at once,   p ← p + u

All gradients are gathered into one flat vector (one ``cat``), the LSTM runs once on it, and the update
is scattered back with one ``_foreach_add_``. A parameter without a gradient this step counts as a zero
gradient, so the flat layout never changes. The LSTM state (80 floats per coordinate for a 2×20 RP)
lives in ``self.lstm_state`` and travels in ``state_dict``.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from l2o.learned.checkpoint import l2o_from_checkpoint
from l2o.learned.lstm import CoordinateLSTM, LSTMState
from l2o.learned.features import FeatureState


class LSTMOptimizer(torch.optim.Optimizer):
    def __init__(self, params, checkpoint: str | os.PathLike | CoordinateLSTM, best: bool = True):
        l2o = checkpoint if isinstance(checkpoint, CoordinateLSTM) else l2o_from_checkpoint(checkpoint, best=best)
        super().__init__(params, defaults={})
        self.l2o = l2o.eval().requires_grad_(False)
        self.lstm_state: LSTMState | None = None

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
        if self.lstm_state is None:
            self.lstm_state = self.l2o.init_state(flat)
        update, self.lstm_state = self.l2o.step(flat, self.lstm_state)
        torch._foreach_add_(params, [u.view_as(p) for u, p in zip(update.split([p.numel() for p in params]), params)])
        return loss

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        s = self.lstm_state
        sd["lstm_state"] = None if s is None else {"features": s.features._asdict(), "hidden": list(s.hidden)}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        saved = state_dict.pop("lstm_state", None)
        super().load_state_dict(state_dict)
        self.lstm_state = None if saved is None else LSTMState(
            FeatureState(**saved["features"]), tuple(t.clone() for t in saved["hidden"]))
