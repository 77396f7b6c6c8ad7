"""What every optimizer of this package does around its rule, per param group: the closure, the settings
``lr`` and ``weight_decay`` checked where they enter, and the decoupled weight decay (as AdamW)."""

from __future__ import annotations

import torch


def checked(lr: float, weight_decay: float) -> dict[str, float]:
    """The defaults ``{"lr", "weight_decay"}``; ``ValueError`` for a negative or non-numeric value."""
    for name, value in (("learning rate", lr), ("weight_decay", weight_decay)):
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0):
            raise ValueError(f"invalid {name}: {value!r}")
    return {"lr": float(lr), "weight_decay": float(weight_decay)}


def closure_loss(closure):
    """The closure's loss, evaluated with gradients on (``None`` without a closure)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def decay(params: list[torch.Tensor], group: dict) -> None:
    """Decoupled weight decay: ``p ← p · (1 − lr · weight_decay)``, before the rule's step."""
    factor = group["lr"] * group.get("weight_decay", 0.0)
    if factor:
        torch._foreach_mul_(params, 1.0 - factor)
