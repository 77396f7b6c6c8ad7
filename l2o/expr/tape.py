"""Expressions compiled once into straight-line code over named inputs, run through the one table.

Walking a sympy tree on every optimizer step costs more than the tensor work on small tensors (printing a
symbol to find its input, converting numbers). A ``Tape`` walks the trees once: every distinct
subexpression becomes one instruction — an input, a number, a learnable constant, or an op of
``TORCH_OPS`` (``mode="tensor"``) or of its list form ``FOREACH_OPS`` (``mode="foreach"``) — so a
subexpression shared by several expressions is computed once. Subexpressions of the names in
``scalars`` (Python numbers at run time, such as the step count) and of numbers alone are computed as
numbers. Instructions are added expression by expression (``add``), and run in order over a value list
(``run``), so a caller can interleave its own statements (``l2o.features.step``).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sympy as sp
import torch

from l2o.expr.ops import FOREACH_OPS, TORCH_OPS, _pow

# The heads whose torch functions already take Python numbers beside tensors (or lists, for foreach).
_TAKE_NUMBERS = {"tensor": (sp.Add, sp.Mul), "foreach": (sp.Add, sp.Mul, sp.Pow, sp.Max, sp.Min)}
_PLAIN = {sp.Add: lambda *a: sum(a), sp.Mul: lambda *a: functools.reduce(operator.mul, a),
          sp.Max: max, sp.Min: min}


def _number_op(head: type) -> Callable[..., float]:
    if head in _PLAIN:
        return _PLAIN[head]
    fn = TORCH_OPS[head]
    return lambda *args: float(fn(*(torch.tensor(float(a), dtype=torch.float64) for a in args)))


def _number_pow(base: float, exponent: float) -> float:
    return float(_pow(torch.tensor(float(base), dtype=torch.float64), exponent))


class Tape:
    """Straight-line code for a growing set of expressions; see the module docstring."""

    def __init__(self, mode: str = "tensor", scalars: frozenset[str] | set[str] = frozenset(),
                 floats: Mapping[sp.Float, int] | None = None):
        if mode not in ("tensor", "foreach"):
            raise ValueError(f"mode must be tensor or foreach, got {mode!r}")
        self.mode, self.scalars, self.floats = mode, frozenset(scalars), floats
        self.slots: dict[sp.Basic, int] = {}
        self.code: list[tuple] = []  # (kind, payload, args): kind in in | num | param | op | num_op
        self.numeric: list[bool] = []  # whether each slot holds a Python number

    def __len__(self) -> int:
        return len(self.code)

    def add(self, expr: sp.Expr) -> int:
        """The slot of ``expr``'s value, appending the instructions it needs."""
        node = expr
        if node in self.slots:
            return self.slots[node]
        if node.is_Symbol:
            name = str(node)
            self._emit(node, ("in", name, ()), name in self.scalars)
        elif node.is_Float and self.floats is not None:
            self._emit(node, ("param", self.floats[node], ()), False)
        elif node.is_Number:
            self._emit(node, ("num", int(node) if node.is_Integer else float(node), ()), True)
        else:
            head = type(node)
            table = TORCH_OPS if self.mode == "tensor" else FOREACH_OPS
            if head not in table:
                raise ValueError(f"no torch mapping for {head.__name__} in {expr}")
            exponent = None
            if isinstance(node, sp.Pow) and node.exp.is_Number and not (node.exp.is_Float and self.floats is not None):
                exponent = int(node.exp) if node.exp.is_Integer else float(node.exp)
                args = (self.add(node.base),)
            else:
                args = tuple(self.add(a) for a in node.args)
            if all(self.numeric[a] for a in args):
                fn = (lambda b, e=exponent: _number_pow(b, e)) if exponent is not None else _number_op(head)
                self._emit(node, ("num_op", fn, args), True)
            elif exponent is not None:
                pow_fn = _pow if self.mode == "tensor" else FOREACH_OPS[sp.Pow]
                self._emit(node, ("op", lambda b, e=exponent, f=pow_fn: f(b, e), args), False)
            else:
                fn = table[head]
                wrap = head not in _TAKE_NUMBERS[self.mode] and any(self.numeric[a] for a in args)
                self._emit(node, ("op", self._wrapped(fn) if wrap else fn, args), False)
        return self.slots[node]

    def _wrapped(self, fn):
        """A unary or n-ary op given numbers beside tensors: the numbers become tensors (lists) first."""
        if self.mode == "tensor":
            def call(*args):
                ref = next(a for a in args if isinstance(a, torch.Tensor))
                return fn(*(a if isinstance(a, torch.Tensor) else torch.as_tensor(a, dtype=ref.dtype, device=ref.device)
                            for a in args))
        else:
            def call(*args):
                ref = next(a for a in args if isinstance(a, (list, tuple)))
                return fn(*(a if isinstance(a, (list, tuple)) else [torch.tensor(float(a))] * len(ref) for a in args))
        return call

    def _emit(self, node: sp.Basic, instruction: tuple, numeric: bool) -> None:
        self.slots[node] = len(self.code)
        self.code.append(instruction)
        self.numeric.append(numeric)

    def run(self, values: list, env: Mapping[str, Any], start: int = 0, end: int | None = None,
            params: torch.Tensor | None = None) -> list:
        """Fill ``values[start:end]`` (a list as long as the tape) from ``env`` and earlier values."""
        for i in range(start, len(self.code) if end is None else end):
            kind, payload, args = self.code[i]
            if kind == "op" or kind == "num_op":
                values[i] = payload(*(values[a] for a in args))
            elif kind == "in":
                values[i] = env[payload]
            elif kind == "param":
                values[i] = params[payload]
            else:
                values[i] = payload
        return values


def compile_expressions(exprs: Sequence[sp.Expr], mode: str = "tensor", scalars=frozenset(),
                        floats: Mapping[sp.Float, int] | None = None) -> tuple[Tape, list[int]]:
    """A tape for ``exprs`` and the slot of each one's value."""
    tape = Tape(mode, scalars, floats)
    return tape, [tape.add(e) for e in exprs]
