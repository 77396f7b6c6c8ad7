"""``Equation``: a sympy expression with its complexity, fit and provenance, and its JSON form.

The JSON form stores the expression as text and reads it back only through ``parse_equation``.
``complexity`` counts the nodes of the expression tree (as PySR does).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from l2o.expr.parse import parse_equation


_LAGGED = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)_(\d+)$")


def complexity(expr: sp.Expr) -> int:
    return sum(1 for _ in sp.preorder_traversal(expr))


def round_floats(expr: sp.Expr, digits: int = 3) -> sp.Expr:
    """``expr`` with every float rounded to ``digits`` significant digits."""
    return expr.xreplace({f: sp.Float(float(f"{float(f):.{digits}g}")) for f in expr.atoms(sp.Float)})


@dataclass
class Equation:
    expr: sp.Expr
    loss: float | None = None  # training loss (MSE) of the fit that produced it
    r2: float | None = None  # held-out R²
    meta: dict[str, Any] = field(default_factory=dict)  # provenance: engine, dataset, settings …

    @property
    def complexity(self) -> int:
        return complexity(self.expr)

    @property
    def text(self) -> str:
        return sp.sstr(self.expr)

    def latex(self, digits: int = 3) -> str:
        """LaTeX with floats rounded; a ``<feature>_<lag>`` variable reads as the feature subscripted by its lag."""
        names = {}
        for s in self.expr.free_symbols:
            match = _LAGGED.match(s.name)
            if match:
                feature = match[1].replace("_", r"\_")
                names[s] = rf"\mathrm{{{feature}}}_{{{match[2]}}}"
        return sp.latex(round_floats(self.expr, digits), symbol_names=names)

    def to_dict(self) -> dict[str, Any]:
        clean = lambda v: None if v is None or not math.isfinite(v) else float(v)  # noqa: E731
        return {"equation": self.text, "complexity": self.complexity, "loss": clean(self.loss),
                "r2": clean(self.r2), "latex": self.latex(), "meta": self.meta}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Equation":
        return cls(parse_equation(d["equation"]), d.get("loss"), d.get("r2"), dict(d.get("meta") or {}))

    @classmethod
    def from_json(cls, text: str) -> "Equation":
        return cls.from_dict(json.loads(text))
