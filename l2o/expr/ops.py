"""The one mapping from sympy to torch, and its list form for torch's multi-tensor kernels.

``TORCH_OPS`` maps each sympy head this project produces to a torch function; ``FOREACH_OPS`` is derived
from it (torch's ``_foreach_<name>`` kernel where one exists), not a second table. Fitting, meta-tuning,
the symbolic optimizer and code export all evaluate or print expressions through these.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable

import sympy as sp
import torch


def _pow(base: torch.Tensor, exponent: torch.Tensor | float) -> torch.Tensor:
    if isinstance(exponent, (int, float)):
        if exponent == 0.5:
            return torch.sqrt(base)
        if exponent == -1:
            return torch.reciprocal(base)
    return torch.pow(base, exponent)


TORCH_OPS: dict[type, Callable[..., torch.Tensor]] = {
    sp.Add: lambda *a: functools.reduce(operator.add, a),
    sp.Mul: lambda *a: functools.reduce(operator.mul, a),
    sp.Pow: _pow,
    sp.exp: torch.exp,
    sp.log: torch.log,
    sp.tanh: torch.tanh,
    sp.sinh: torch.sinh,
    sp.asinh: torch.asinh,
    sp.sign: torch.sign,
    sp.Abs: torch.abs,
    sp.Max: lambda *a: functools.reduce(torch.maximum, a),
    sp.Min: lambda *a: functools.reduce(torch.minimum, a),
}


_SEQ = (list, tuple)  # torch's foreach kernels return either


def _foreach_of(fn: Callable[..., torch.Tensor]) -> Callable[..., list[torch.Tensor]]:
    """The list form of a ``TORCH_OPS`` function: torch's ``_foreach_<name>`` kernel where one exists."""
    kernel = getattr(torch, f"_foreach_{getattr(fn, '__name__', '')}", None)
    if kernel is not None:
        return kernel
    return lambda *lists: [fn(*args) for args in zip(*lists)]


def _foreach_binary(kernel: Callable, scalar_op: Callable) -> Callable:
    """Pairwise list op where either side may be a Python number (numbers fold together)."""
    def apply(a, b):
        if isinstance(a, _SEQ):
            return kernel(a, b)
        if isinstance(b, _SEQ):
            return kernel(b, a)
        return scalar_op(a, b)
    return lambda *args: functools.reduce(apply, args)


def _foreach_pow(base, exponent):
    if exponent == 0.5:
        return torch._foreach_sqrt(base)
    if exponent == -1:
        return torch._foreach_reciprocal(base)
    return torch._foreach_pow(base, exponent)


def _foreach_minmax(kernel: Callable) -> Callable:
    return lambda *args: functools.reduce(lambda a, b: kernel(a, b) if isinstance(a, _SEQ) else kernel(b, a), args)


# The foreach forms are derived from TORCH_OPS, not a second table: same heads, list semantics.
FOREACH_OPS: dict[type, Callable[..., list[torch.Tensor]]] = {
    **{head: _foreach_of(fn) for head, fn in TORCH_OPS.items()},
    sp.Add: _foreach_binary(torch._foreach_add, operator.add),
    sp.Mul: _foreach_binary(torch._foreach_mul, operator.mul),
    sp.Pow: _foreach_pow,
    sp.Max: _foreach_minmax(torch._foreach_maximum),
    sp.Min: _foreach_minmax(torch._foreach_minimum),
}
