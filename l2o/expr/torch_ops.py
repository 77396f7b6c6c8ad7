"""Expressions as torch code: ``TorchExpression`` (an expression as an ``nn.Module``), ``predict`` (on rows)
and ``torch_code`` (as Python source), all through the one table of ``l2o.expr.ops``.

``TorchExpression`` turns an expression into a module over named input tensors; with
``learn_constants=True`` every float constant becomes an ``nn.Parameter`` (integers, such as the 2 of x²,
stay fixed), and ``to_sympy()`` writes the learned values back into the expression. With
``learn_constants="relative"`` the parameter is each constant's relative change δ (value = c₀·(1 + δ)), so
that constants of very different magnitudes (a step size of 1e-3 beside a slope of 20) move at the same
relative pace under one optimizer learning rate.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import sympy as sp
import torch
from torch import nn

from l2o.expr.ops import FOREACH_OPS, TORCH_OPS, _pow  # noqa: F401 — re-exported: the table lives in ops
from l2o.expr.tape import Tape


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
        self._tapes: dict = {}

    @property
    def constants(self) -> torch.Tensor:
        return self.base * (1 + self.delta) if self.learn_constants == "relative" else self._constants

    def _tape(self, mode: str, scalars: frozenset[str]) -> tuple[Tape, int]:
        key = (mode, scalars)
        if key not in self._tapes:  # compiled once per kind of input (tensors or lists; which are numbers)
            tape = Tape(mode, scalars, self._float_index if mode == "tensor" else None)
            self._tapes[key] = (tape, tape.add(self.expr))
        return self._tapes[key]

    def forward(self, inputs: Mapping[str, torch.Tensor | float], like: torch.Tensor | None = None) -> torch.Tensor:
        """The expression over ``inputs`` (tensors, or numbers), as a tensor shaped like ``like`` (default:
        the first tensor among the inputs)."""
        missing = [s for s in self.symbols if s not in inputs]
        if missing:
            raise KeyError(f"missing inputs {missing}")
        like = like if like is not None else next(v for v in inputs.values() if isinstance(v, torch.Tensor))
        consts = self.constants
        consts = consts.to(like.dtype) if consts.numel() else consts
        numbers = frozenset(k for k in self.symbols if not isinstance(inputs[k], torch.Tensor))
        tape, root = self._tape("tensor", numbers)
        out = tape.run([None] * len(tape), inputs, params=consts)[root]
        if isinstance(out, torch.Tensor):
            return out if out.shape == like.shape else out.expand_as(like)
        return torch.full_like(like, float(out))

    def foreach(self, inputs: Mapping[str, list[torch.Tensor] | float], like: list[torch.Tensor]) -> list[torch.Tensor]:
        """The expression over lists of tensors (the constants as fixed numbers), one list like ``like``."""
        numbers = frozenset(k for k in self.symbols if not isinstance(inputs[k], (list, tuple)))
        tape, root = self._tape("foreach", numbers)
        out = tape.run([None] * len(tape), inputs)[root]
        return list(out) if isinstance(out, (list, tuple)) else [torch.full_like(t, float(out)) for t in like]

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["_tapes"] = {}  # compiled code holds closures; it is rebuilt on first use
        return state

    def to_sympy(self) -> sp.Expr:
        """The expression with the current (possibly learned) constant values."""
        values = self.constants.detach().cpu().tolist()
        return self.expr.xreplace({f: sp.Float(values[i]) for f, i in self._float_index.items()})


def predict(expr: sp.Expr, X: np.ndarray, feature_names) -> np.ndarray:
    """``expr`` on the rows of ``X`` (rows × features, numpy) in float64, through the one table."""
    cols = {name: torch.from_numpy(np.require(X[:, i], np.float64, ["C", "W"]))  # copies read-only columns
            for i, name in enumerate(feature_names)}
    if not cols:
        return np.full(len(X), float(expr))
    with torch.no_grad():
        return TorchExpression(expr)(cols).numpy()


_INFIX = {sp.Add: " + ", sp.Mul: " * "}
# Python spellings for subexpressions of plain numbers (the step's scalars) in generated source.
_PY = {sp.exp: "math.exp", sp.log: "math.log", sp.tanh: "math.tanh", sp.sinh: "math.sinh", sp.asinh: "math.asinh",
       sp.Abs: "abs", sp.Max: "max", sp.Min: "min"}


def torch_code(expr: sp.Expr, name=lambda symbol: f"x_{symbol}", scalars=frozenset()) -> str:
    """Python source of ``expr`` over tensors named ``name(symbol)``, spelling each head by the torch
    function ``TORCH_OPS`` maps it to (exported optimizers, the compile path). A subexpression of the
    symbols in ``scalars`` (Python numbers where the code runs) and numbers alone is spelt with Python's
    arithmetic and ``math`` instead (the source then needs ``import math``)."""
    def numeric(node) -> bool:
        return all(str(s) in scalars for s in node.free_symbols)

    def py(node) -> str:
        if node.is_Symbol:
            return name(node)
        if node.is_Number:
            return repr(int(node)) if node.is_Integer else repr(float(node))
        args = [py(a) for a in node.args]
        if type(node) in _INFIX:
            return "(" + _INFIX[type(node)].join(args) + ")"
        if isinstance(node, sp.Pow):
            return f"({args[0]} ** {args[1]})"
        if isinstance(node, sp.sign):
            return f"((({args[0]}) > 0) - (({args[0]}) < 0))"
        if type(node) not in _PY:
            raise ValueError(f"no Python spelling for {type(node).__name__}")
        return f"{_PY[type(node)]}({', '.join(args)})"

    def walk(node) -> str:
        if node.is_Symbol:
            return name(node)
        if node.is_Number:
            return repr(int(node)) if node.is_Integer else repr(float(node))
        if numeric(node):
            return py(node)
        args = [walk(a) for a in node.args]
        if type(node) in _INFIX:
            return "(" + _INFIX[type(node)].join(args) + ")"
        if isinstance(node, sp.Pow):
            e = node.exp
            if e == sp.Rational(1, 2):
                return f"torch.sqrt({args[0]})"
            if e == -1:
                return f"torch.reciprocal({args[0]})"
            return f"torch.pow({args[0]}, {args[1]})"
        if isinstance(node, (sp.Max, sp.Min)):
            fn = "maximum" if isinstance(node, sp.Max) else "minimum"
            tensors = [a for a, n in zip(args, node.args) if not numeric(n)]
            code = tensors[0]
            for a in tensors[1:]:
                code = f"torch.{fn}({code}, {a})"
            for a, n in zip(args, node.args):
                if numeric(n):
                    code = f"torch.clamp({code}, {'min' if fn == 'maximum' else 'max'}={a})"
            return code
        fn = TORCH_OPS.get(type(node))
        if fn is None or not hasattr(torch, getattr(fn, "__name__", "")):
            raise ValueError(f"no torch spelling for {type(node).__name__}")
        return f"torch.{fn.__name__}({', '.join(args)})"

    return walk(expr)
