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
MAX_MINMAX = 16
MAX_MAGNITUDE = 1e300
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
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise EquationError(f"equation too large ({len(nodes)} syntax nodes, at most {MAX_NODES})")
    minmax = sum(1 for n in nodes if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                 and n.func.id.lower() in ("max", "min", "relu"))
    if minmax > MAX_MINMAX:
        raise EquationError(f"at most {MAX_MINMAX} max/min/relu calls, got {minmax}")
    allowed = None if variables is None else set(variables)
    expr = _build(tree.body, allowed, 0)
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan) or not all(map(_bounded, expr.atoms(sp.Number))):
        raise EquationError("the equation contains a division by zero or a non-finite constant")
    # integers from 1e9 up are floats, as literals of that size are: the text of the result parses back
    big = {n: sp.Float(float(int(n))) for n in expr.atoms(sp.Integer) if abs(int(n)) >= 10**9}
    return expr.xreplace(big) if big else expr


def _bounded(n: sp.Number) -> bool:
    """A finite number of magnitude at most ``MAX_MAGNITUDE`` (compared without converting it to a float)."""
    if n.is_Integer:
        return abs(int(n)).bit_length() <= 996  # 2**996 < 1e300 < 2**997
    if n.is_Rational:
        return _bounded(sp.Integer(n.p)) and _bounded(sp.Integer(n.q))
    try:
        value = float(n)
    except (OverflowError, ValueError):
        return False
    # a float of the text's own range: finite, and not a nonzero that rounds to 0 (1e-300*1e-300)
    return math.isfinite(value) and abs(value) <= MAX_MAGNITUDE and (value != 0 or n.is_zero)


def _checked(value: sp.Expr) -> sp.Expr:
    """``value``, if it is not a constant beyond ±MAX_MAGNITUDE (a constant expression such as exp(9) is
    evaluated here, once its arguments have passed the same check)."""
    if value.is_Number:
        ok = _bounded(value)
    elif not value.free_symbols:
        try:
            number = complex(value)
        except (TypeError, ValueError, OverflowError):
            ok = False
        else:
            ok = number.imag == 0 and math.isfinite(number.real) and abs(number.real) <= MAX_MAGNITUDE
    else:
        ok = True
    if not ok:
        raise EquationError(f"a constant of the equation is beyond ±{MAX_MAGNITUDE:g} (or not real)")
    return value


def _number_power(base: sp.Expr, exponent: sp.Expr) -> None:
    """Refuse a power of numbers whose value would pass ``MAX_MAGNITUDE``, before sympy computes it."""
    if not (base.is_Number and exponent.is_Number) or base == 0:
        return
    size = abs(float(exponent)) * math.log10(abs(float(base)))
    if size > math.log10(MAX_MAGNITUDE):
        raise EquationError(f"a power of numbers is beyond ±{MAX_MAGNITUDE:g}")


_CHAINS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}


def _chain(node: ast.BinOp) -> tuple[bool, list[tuple[bool, ast.AST]]]:
    """A left-nested run of + and − (or of × and ÷) as (is_sum, [(inverted, operand), …]), first first."""
    is_sum = isinstance(node.op, (ast.Add, ast.Sub))
    kinds = (ast.Add, ast.Sub) if is_sum else (ast.Mult, ast.Div)
    parts = []
    while isinstance(node, ast.BinOp) and isinstance(node.op, kinds):
        parts.append((isinstance(node.op, (ast.Sub, ast.Div)), node.right))
        node = node.left
    parts.append((False, node))
    return is_sum, parts[::-1]


def _build(node: ast.AST, allowed: set[str] | None, depth: int) -> sp.Expr:
    if depth > MAX_DEPTH:
        raise EquationError(f"equation nested deeper than {MAX_DEPTH}")
    d = depth + 1
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EquationError(f"only numbers are allowed as constants, got {value!r}")
        if (isinstance(value, int) and value.bit_length() > 996) or (
                isinstance(value, float) and not (math.isfinite(value) and abs(value) <= MAX_MAGNITUDE)):
            raise EquationError(f"a constant of the equation is beyond ±{MAX_MAGNITUDE:g}")
        return sp.Integer(value) if isinstance(value, int) and abs(value) < 10**9 else sp.Float(value)
    if isinstance(node, ast.Name):
        name = node.id
        if not _NAME.match(name) or name in FUNCTIONS:
            raise EquationError(f"name {name!r} is not allowed")
        if name.lower() in _NOT_A_NUMBER:
            raise EquationError(f"{name!r} is not a finite number (and not a variable name this parser accepts)")
        if allowed is not None and name not in allowed:
            raise EquationError(f"unknown variable {name!r}; expected among {sorted(allowed)}")
        return sp.Symbol(name, real=True)
    if isinstance(node, ast.BinOp) and type(node.op) in _CHAINS:
        is_sum, parts = _chain(node)
        terms = []
        for inverted, operand in parts:
            value = _build(operand, allowed, d)
            if inverted:
                if not is_sum and value == 0:
                    raise EquationError("the equation contains a division by zero")
                value = -value if is_sum else sp.Pow(value, -1)
            terms.append(_checked(value))
        return _checked(sp.Add(*terms) if is_sum else sp.Mul(*terms))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _build(node.left, allowed, d), _build(node.right, allowed, d)
        if isinstance(node.op, ast.Pow):
            if right.is_Number and abs(float(right)) > 16:
                raise EquationError("exponents are limited to |p| <= 16")
            _number_power(left, right)
        return _checked(_BINARY[type(node.op)](left, right))
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
        args = [_build(a, allowed, d) for a in node.args]
        if node.func.id == "pow":
            if args[1].is_Number and abs(float(args[1])) > 16:
                raise EquationError("exponents are limited to |p| <= 16")
            _number_power(args[0], args[1])
        if node.func.id in ("exp", "sinh") and not args[0].free_symbols and abs(complex(args[0])) > 690:
            raise EquationError(f"{node.func.id} of a number beyond ±{MAX_MAGNITUDE:g}")
        return _checked(FUNCTIONS[node.func.id](*args))
    raise EquationError(f"{type(node).__name__} is not allowed in an equation")
