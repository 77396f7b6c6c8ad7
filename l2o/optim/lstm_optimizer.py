"""``LSTMOptimizer``: a meta-trained coordinatewise LSTM as a ``torch.optim.Optimizer``.

    u = L2O(features(g))  over all coordinates of a param group at once,   p ← p + lr · u

The gradients of a group are gathered into one flat vector (one ``cat``), the LSTM runs once on it, and
the update is scattered back with one ``_foreach_add_``. A parameter without a gradient this step counts as a zero
gradient, so the flat layout never changes. The LSTM state (80 floats per coordinate for a 2×20 RP)
lives in ``self.lstm_state`` (per param group, one ``LSTMState`` per chunk) and travels in ``state_dict``.
Each group is its own flat vector, so a group's ``lr`` (a multiplier of the update) and decoupled
``weight_decay`` apply to it alone.

The flat vector is processed in chunks of ``chunk_size`` coordinates, each with its own state. On CPU the
default is ``l2o.learned.lstm.CPU_CHUNK`` (8192), which keeps a chunk in cache through the whole network;
on a GPU it is one chunk (fewer launches). Chunks change nothing in the result (to the last bit for sizes
that are multiples of 64), and a saved state loads whatever chunking it was saved with.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from l2o.features import FeatureState
from l2o.learned.lstm import CPU_CHUNK, CoordinateLSTM, LSTMState, step_in_chunks
from l2o.meta.checkpoint import l2o_from_checkpoint
from l2o.optim.group import checked, closure_loss, decay


class LSTMOptimizer(torch.optim.Optimizer):
    """A meta-trained coordinatewise LSTM as a ``torch.optim.Optimizer``.

    Args:
        params: tensors or param groups (each group may set its own ``lr`` and ``weight_decay``); groups
            added mid-run with ``add_param_group`` start with a fresh LSTM state of their own.
        checkpoint: an l2o checkpoint file, or a ``CoordinateLSTM``.
        best: the checkpoint's best weights (else its last).
        lr: multiplier of the LSTM's update (1.0 applies it as trained), so torch's LR schedulers drive it.
        weight_decay: decoupled, as AdamW: each step first scales p by 1 - lr·weight_decay.
        chunk_size: coordinates per chunk ("auto": ``CPU_CHUNK`` on CPU, one chunk on a GPU; None: one).
    """

    def __init__(self, params, checkpoint: str | os.PathLike | CoordinateLSTM, best: bool = True,
                 chunk_size: int | None | str = "auto", lr: float = 1.0, weight_decay: float = 0.0):
        if chunk_size not in ("auto", None) and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be 'auto', None (one chunk) or an int >= 1, "
                             f"got {chunk_size!r}")
        defaults = checked(lr, weight_decay)
        l2o = checkpoint if isinstance(checkpoint, CoordinateLSTM) else l2o_from_checkpoint(checkpoint, best=best)
        self.lstm_state: list[list[LSTMState] | None] = []  # per param group, one LSTMState per chunk
        super().__init__(params, defaults=defaults)
        self.l2o = l2o.eval().requires_grad_(False)
        self.chunk_size = chunk_size

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self.lstm_state.append(None)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure_loss(closure)
        for index, group in enumerate(self.param_groups):
            params = group["params"]
            if params:
                self._step_group(index, group, params)
        return loss

    def _step_group(self, index: int, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        grads = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
                 for p in params]
        flat = torch.cat(grads)
        if self.l2o.weights[0].device != flat.device or self.l2o.weights[0].dtype != flat.dtype:
            self.l2o.to(device=flat.device, dtype=flat.dtype)
        size = self.chunk_size
        if size == "auto":
            size = CPU_CHUNK if flat.device.type == "cpu" else None
        size = size or flat.numel()
        chunks = flat.split(size)
        if self.lstm_state[index] is None:
            self.lstm_state[index] = [self.l2o.init_state(c) for c in chunks]
        sizes = [s.hidden[0].shape[-1] for s in self.lstm_state[index]]
        if sum(sizes) != flat.numel():
            raise RuntimeError("the parameters changed size since the first step; build a new LSTMOptimizer")
        if sizes != [c.numel() for c in chunks]:
            self.lstm_state[index] = _rechunk(self.lstm_state[index], size)  # saved with another chunking
        update = step_in_chunks(self.l2o.step, flat, self.lstm_state[index], size)
        decay(params, group)
        torch._foreach_add_(params, [u.view_as(p) for u, p in zip(update.split([p.numel() for p in params]), params)],
                            alpha=group["lr"])

    def state_bytes(self) -> int:
        """Bytes of LSTM and feature state held now."""
        return sum(t.numel() * t.element_size() for chunks in self.lstm_state for s in chunks or []
                   for t in [*s.features.moments.values(), *s.hidden])

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["lstm_state"] = [None if chunks is None else [
            {"step": s.features.step, "moments": dict(s.features.moments), "hidden": list(s.hidden)}
            for s in chunks] for chunks in self.lstm_state]
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        saved = state_dict.pop("lstm_state", None)
        super().load_state_dict(state_dict)
        if saved and isinstance(saved[0], dict):  # one group's chunks, as saved before groups had states
            saved = [saved]
        saved = list(saved or []) + [None] * (len(self.param_groups) - len(saved or []))
        self.lstm_state = [None if chunks is None else [
            LSTMState(FeatureState(int(s["step"]), {k: v.clone() for k, v in s["moments"].items()}),
                      tuple(t.clone() for t in s["hidden"])) for s in chunks] for chunks in saved]


def _rechunk(states: list[LSTMState], size: int) -> list[LSTMState]:
    """The same per-coordinate state split into chunks of ``size`` coordinates (the last dim of every
    tensor is the coordinate; the step count is shared)."""
    def split(tensors):
        return torch.cat(tensors, -1).split(size, -1)

    first = states[0].features
    moments = {name: split([s.features.moments[name] for s in states]) for name in first.moments}
    hidden = [split([s.hidden[i] for s in states]) for i in range(len(states[0].hidden))]
    return [LSTMState(FeatureState(first.step, {name: parts[k].clone() for name, parts in moments.items()}),
                      tuple(h[k].clone() for h in hidden)) for k in range(len(hidden[0]))]
