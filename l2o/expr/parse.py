"""Equations from text through a whitelist: Python's ``ast`` parses, nothing is ever evaluated.

Accepted: numbers (finite), variable names (identifiers without leading underscores; optionally only
those in ``variables``), ``+ - * / **``, unary minus, and calls of the functions in ``FUNCTIONS`` with
positional arguments. Everything else — attribute access, subscripts, lambdas, strings, keywords,
comprehensions, unknown functions, dunder names — is rejected with ``EquationError``. Text longer than
``MAX_CHARS`` or trees larger than ``MAX_NODES`` / deeper than ``MAX_DEPTH`` are rejected before any
algebra. The result is a sympy expression built node by node (never ``sympify`` on the text).

The safe operators map to plain sympy so that LaTeX reads naturally: ``log(x)`` → log|x|,
``sqrt(x)`` → √|x|, ``square``/``cube`` → x²/x³, ``relu`` → max(0, x); a non-integer power of an
expression that may be negative takes the absolute value of the base.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable

import sympy as sp

MAX_CHARS = 10_000
MAX_NODES = 2_000
MAX_DEPTH = 60
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_NOT_A_NUMBER = {"nan", "inf", "infinity", "oo", "zoo"}  # names that read as non-finite constants


class EquationError(ValueError):
    """The text is not an equation this project accepts."""


def _abs_pow(base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
    if exponent.is_integer or base.is_nonnegative:
        return sp.Pow(base, exponent)
    return sp.Pow(sp.Abs(base), exponent)


FUNCTIONS = {
    "tanh": sp.tanh, "asinh": sp.asinh, "sinh": sp.sinh, "exp": sp.exp, "sign": sp.sign, "abs": sp.Abs,
    "Abs": sp.Abs, "square": lambda x: x ** 2, "cube": lambda x: x ** 3,
    "relu": lambda x: sp.Max(0, x), "log": lambda x: sp.log(sp.Abs(x)), "sqrt": lambda x: sp.sqrt(sp.Abs(x)),
    "pow": _abs_pow, "Max": sp.Max, "Min": sp.Min, "max": sp.Max, "min": sp.Min,
}
_ARITY = {"pow": 2, "Max": 2, "Min": 2, "max": 2, "min": 2}
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: _abs_pow}


def parse_equation(text: str, variables: Iterable[str] | None = None) -> sp.Expr:
    """The sympy expression of ``text``; ``variables`` (if given) is the only set of names allowed."""
    if not isinstance(text, str):
        raise EquationError(f"an equation must be text, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise EquationError(f"equation text longer than {MAX_CHARS} characters ({len(text)})")
    if not text.strip():
        raise EquationError("empty equation")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise EquationError(f"not an expression: {err.__class__.__name__}: {err}") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise EquationError(f"equation too large ({nodes} syntax nodes, at most {MAX_NODES})")
    allowed = None if variables is None else set(variables)
    expr = _build(tree.body, allowed, 0)
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan) or any(
            not math.isfinite(float(n)) for n in expr.atoms(sp.Number)):
        raise EquationError("the equation contains a division by zero or a non-finite constant")
    return expr


def _build(node: ast.AST, allowed: set[str] | None, depth: int) -> sp.Expr:
    if depth > MAX_DEPTH:
        raise EquationError(f"equation nested deeper than {MAX_DEPTH}")
    d = depth + 1
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise EquationError(f"only numbers are allowed as constants, got {node.value!r}")
        if not math.isfinite(node.value) or abs(node.value) > 1e300:
            raise EquationError(f"constant {node.value!r} is not a finite number")
        return sp.Integer(node.value) if isinstance(node.value, int) and abs(node.value) < 10**9 else sp.Float(node.value)
    if isinstance(node, ast.Name):
        name = node.id
        if not _NAME.match(name) or name in FUNCTIONS:
            raise EquationError(f"name {name!r} is not allowed")
        if name.lower() in _NOT_A_NUMBER:
            raise EquationError(f"{name!r} is not a finite number (and not a variable name this parser accepts)")
        if allowed is not None and name not in allowed:
            raise EquationError(f"unknown variable {name!r}; expected among {sorted(allowed)}")
        return sp.Symbol(name, real=True)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _build(node.left, allowed, d), _build(node.right, allowed, d)
        if isinstance(node.op, ast.Pow) and right.is_Number and abs(float(right)) > 16:
            raise EquationError("exponents are limited to |p| <= 16")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _build(node.operand, allowed, d)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = node.func.id if isinstance(node.func, ast.Name) else ast.dump(node.func)[:40]
            raise EquationError(f"function {what!r} is not allowed; allowed: {', '.join(sorted(FUNCTIONS))}")
        if node.keywords:
            raise EquationError("keyword arguments are not allowed")
        arity = _ARITY.get(node.func.id, 1)
        if len(node.args) != arity:
            raise EquationError(f"{node.func.id} takes {arity} argument(s), got {len(node.args)}")
        return FUNCTIONS[node.func.id](*(_build(a, allowed, d) for a in node.args))
    raise EquationError(f"{type(node).__name__} is not allowed in an equation")
