"""The one mapping from sympy to torch: fitting, meta-tuning, the symbolic optimizer and export use it.

``TORCH_OPS`` maps each sympy head this project produces to a torch function. ``TorchExpression``
turns an expression into an ``nn.Module`` over named input tensors; with ``learn_constants=True``
every float constant becomes an ``nn.Parameter`` (integers, such as the 2 of x², stay fixed), and
``to_sympy()`` writes the learned values back into the expression.
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

    def __init__(self, expr: sp.Expr, learn_constants: bool = False):
        super().__init__()
        self.expr = expr
        self.symbols = sorted(str(s) for s in expr.free_symbols)
        self.learn_constants = learn_constants
        floats = sorted({a for a in expr.atoms(sp.Float)}, key=lambda f: (float(f), str(f)))
        self._float_index = {f: i for i, f in enumerate(floats)}
        values = torch.tensor([float(f) for f in floats], dtype=torch.float64)
        if learn_constants:
            self.constants = nn.Parameter(values)
        else:
            self.register_buffer("constants", values)
        for node in sp.preorder_traversal(expr):
            if not (node.is_Atom or type(node) in TORCH_OPS):
                raise ValueError(f"no torch mapping for {type(node).__name__} in {expr}")

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [s for s in self.symbols if s not in inputs]
        if missing:
            raise KeyError(f"missing inputs {missing}")
        ref = next(iter(inputs.values()))
        consts = self.constants.to(ref.dtype) if self.constants.numel() else self.constants
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
