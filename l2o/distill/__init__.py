"""Distillation: rollout datasets, symbolic-regression engines, constant fitting, the sanity table.

Equations come from text only through the whitelist parser; ``Equation`` carries an expression with
its complexity, fit and provenance.
"""

from l2o.distill.engines import ENGINES, OPERATORS, make_engine
from l2o.distill.equation import Equation, complexity, round_floats
from l2o.distill.parse import FUNCTIONS, EquationError, parse_equation

__all__ = ["ENGINES", "FUNCTIONS", "OPERATORS", "Equation", "EquationError", "complexity", "make_engine",
           "parse_equation", "round_floats"]
