"""The one mapping from sympy to torch: fitting, meta-tuning, the symbolic optimizer and export use it.

``TORCH_OPS`` maps each sympy head this project produces to a torch function. ``TorchExpression``
turns an expression into an ``nn.Module`` over named input tensors; with ``learn_constants=True``
every float constant becomes an ``nn.Parameter`` (integers, such as the 2 of x², stay fixed), and
``to_sympy()`` writes the learned values back into the expression. With ``learn_constants="relative"``
the parameter is each constant's relative change δ (value = c₀·(1 + δ)), so that constants of very
different magnitudes (a step size of 1e-3 beside a slope of 20) move at the same relative pace under
one optimizer learning rate.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping

import sympy as sp
import torch
from torch import nn


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


class TorchExpression(nn.Module):
    """A sympy expression as a torch module: ``forward(inputs)`` with ``inputs[name]`` per free symbol."""

    def __init__(self, expr: sp.Expr, learn_constants: bool | str = False):
        super().__init__()
        if learn_constants not in (False, True, "relative"):
            raise ValueError(f"learn_constants must be False, True or 'relative', got {learn_constants!r}")
        self.expr = expr
        self.symbols = sorted(str(s) for s in expr.free_symbols)
        self.learn_constants = learn_constants
        floats = sorted({a for a in expr.atoms(sp.Float)}, key=lambda f: (float(f), str(f)))
        self._float_index = {f: i for i, f in enumerate(floats)}
        values = torch.tensor([float(f) for f in floats], dtype=torch.float64)
        if learn_constants == "relative":
            self.register_buffer("base", values)
            self.delta = nn.Parameter(torch.zeros_like(values))
        elif learn_constants:
            self._constants = nn.Parameter(values)
        else:
            self.register_buffer("_constants", values)
        for node in sp.preorder_traversal(expr):
            if not (node.is_Atom or type(node) in TORCH_OPS):
                raise ValueError(f"no torch mapping for {type(node).__name__} in {expr}")

    @property
    def constants(self) -> torch.Tensor:
        return self.base * (1 + self.delta) if self.learn_constants == "relative" else self._constants

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [s for s in self.symbols if s not in inputs]
        if missing:
            raise KeyError(f"missing inputs {missing}")
        ref = next(iter(inputs.values()))
        consts = self.constants
        consts = consts.to(ref.dtype) if consts.numel() else consts
        out = self._eval(self.expr, inputs, consts)
        return out if isinstance(out, torch.Tensor) else torch.full_like(ref, float(out))

    def _eval(self, node: sp.Basic, inputs: Mapping[str, torch.Tensor], consts: torch.Tensor):
        if node.is_Symbol:
            return inputs[str(node)]
        if node.is_Float:
            return consts[self._float_index[node]]
        if node.is_Number:  # integers and rationals stay exact (exponents, fixed coefficients)
            return float(node) if not node.is_Integer else int(node)
        if isinstance(node, sp.Pow) and node.exp.is_Number and not node.exp.is_Float:
            return _pow(self._eval(node.base, inputs, consts), float(node.exp) if not node.exp.is_Integer
                        else int(node.exp))
        args = [self._eval(a, inputs, consts) for a in node.args]
        ref = next(iter(inputs.values()))
        # Python numbers (exact integers, rationals) become tensors for every op but + and ×.
        args = [a if isinstance(a, torch.Tensor) or (isinstance(node, (sp.Add, sp.Mul)) and i)
                else torch.as_tensor(a, dtype=ref.dtype, device=ref.device) for i, a in enumerate(args)]
        return TORCH_OPS[type(node)](*args)

    def to_sympy(self) -> sp.Expr:
        """The expression with the current (possibly learned) constant values."""
        values = self.constants.detach().cpu().tolist()
        return self.expr.xreplace({f: sp.Float(values[i]) for f, i in self._float_index.items()})


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


def evaluate_foreach(expr: sp.Expr, inputs: Mapping[str, list[torch.Tensor]]) -> list[torch.Tensor]:
    """``expr`` over lists of tensors (one list per free symbol), constants as Python floats."""
    def walk(node):
        if node.is_Symbol:
            return inputs[str(node)]
        if node.is_Number:
            return int(node) if node.is_Integer else float(node)
        if type(node) not in FOREACH_OPS:
            raise ValueError(f"no torch mapping for {type(node).__name__} in {expr}")
        args = [walk(a) for a in node.args]
        if not isinstance(node, (sp.Add, sp.Mul, sp.Pow, sp.Max, sp.Min)):
            args = [a if isinstance(a, _SEQ) else [torch.tensor(float(a))] * len(ref) for a in args]
        return FOREACH_OPS[type(node)](*args)

    ref = next(iter(inputs.values()))
    out = walk(expr)
    return out if isinstance(out, _SEQ) else [torch.full_like(t, float(out)) for t in ref]
