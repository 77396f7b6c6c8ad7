"""Optimizers by name: ``OptimizerSpec.parse("sgd:lr=0.1,momentum=0.9")`` → a factory over parameters.

Names: ``adam``, ``adamw``, ``sgd``, ``sgdm`` (SGD with momentum 0.9 unless given), ``rmsprop``, plus
``lstm`` (a meta-trained LSTM: ``lstm:checkpoint=PATH``), ``symbolic`` (``symbolic:equation=FILE[,lr=1]``,
FILE an Equation JSON or a distillation's equations.json), and ``module.path:ClassName`` for any
``torch.optim.Optimizer`` subclass importable by the user. Values are numbers, booleans, or tuples of
numbers written with ``/`` (``betas=0.9/0.99``); anything else stays a string.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

_BUILTIN: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "adam": (torch.optim.Adam, {"lr": 1e-3}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3}),
    "sgd": (torch.optim.SGD, {"lr": 0.1}),
    "sgdm": (torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}),
    "rmsprop": (torch.optim.RMSprop, {"lr": 1e-3}),
}
OPTIMIZER_NAMES = (*_BUILTIN, "lstm", "symbolic")


def parse_value(text: str) -> Any:
    """A setting from text: int, float, bool, a /-separated tuple, else the string itself."""
    text = text.strip()
    if "/" in text:  # a tuple of numbers (betas=0.9/0.99); anything else with "/" is a path
        parts = tuple(parse_value(t) for t in text.split("/"))
        if all(isinstance(v, (int, float)) for v in parts):
            return parts
        return text
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            v = cast(text)
        except ValueError:
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"optimizer setting must be finite, got {text!r}")
        return v
    return text


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer class plus keyword arguments, and the label it carries in results."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> "OptimizerSpec":
        name, _, rest = text.strip().partition(":")
        if "." in name and rest and "=" not in rest.split(",")[0]:  # module.path:ClassName[,k=v...]
            cls_name, _, rest = rest.partition(",")
            name = f"{name}:{cls_name}"
        kwargs = {}
        for item in filter(None, (s.strip() for s in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip().isidentifier():
                raise ValueError(f"bad optimizer setting {item!r} in {text!r}; expected key=value")
            kwargs[key.strip()] = parse_value(value)
        spec = cls(name, kwargs)
        spec.resolve()  # fail now, not mid-run
        return spec

    def resolve(self) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
        if self.name in _BUILTIN:
            opt_cls, defaults = _BUILTIN[self.name]
            return opt_cls, {**defaults, **self.kwargs}
        if self.name == "lstm":
            from l2o.optim import LSTMOptimizer

            if "checkpoint" not in self.kwargs:
                raise ValueError("the lstm optimizer needs checkpoint=PATH (a file written by l2o meta-train)")
            return LSTMOptimizer, dict(self.kwargs)
        if self.name == "symbolic":
            from l2o.optim import SymbolicOptimizer
            from l2o.optim.tune import load_equation

            if "equation" not in self.kwargs:
                raise ValueError("the symbolic optimizer needs equation=FILE (an Equation JSON or equations.json)")
            return SymbolicOptimizer, {**self.kwargs, "equation": load_equation(str(self.kwargs["equation"]))}
        module, colon, cls_name = self.name.partition(":")
        if not colon:
            raise ValueError(f"unknown optimizer {self.name!r}; expected one of {', '.join(OPTIMIZER_NAMES)} "
                             "or module.path:ClassName")
        opt_cls = getattr(importlib.import_module(module), cls_name)
        if not (isinstance(opt_cls, type) and issubclass(opt_cls, torch.optim.Optimizer)):
            raise ValueError(f"{self.name} is not a torch.optim.Optimizer subclass")
        return opt_cls, dict(self.kwargs)

    def build(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        opt_cls, kwargs = self.resolve()
        return opt_cls(params, **kwargs)

    def with_(self, **kwargs: Any) -> "OptimizerSpec":
        return OptimizerSpec(self.name, {**self.kwargs, **kwargs})

    @property
    def label(self) -> str:
        """A short name for tables and legends: a rule goes by its file, or its size; ``equation`` has it."""
        _, kwargs = self.resolve()
        if "equation" in self.kwargs:
            given = str(self.kwargs["equation"])
            kwargs["equation"] = given if given.endswith(".json") else f"{kwargs['equation'].complexity}-node rule"
        settings = ",".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in kwargs.items())
        return f"{self.name}({settings})"

    @property
    def equation(self) -> str | None:
        """The rule of a symbolic optimizer as text (printed once, under a table), else None."""
        if self.name != "symbolic":
            return None
        return self.resolve()[1]["equation"].text
