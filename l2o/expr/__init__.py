"""Expressions: ``Equation``, the whitelist parser, and the one sympy→torch table.

A leaf package: distillation, the symbolic optimizers, fitting, meta-tuning and code export all import
it, and it imports nothing else of ``l2o``.
"""

from l2o.expr.equation import Equation, complexity, round_floats
from l2o.expr.ops import FOREACH_OPS, TORCH_OPS
from l2o.expr.parse import FUNCTIONS, EquationError, parse_equation
from l2o.expr.tape import Tape, compile_expressions
from l2o.expr.torch_ops import TorchExpression, predict, torch_code

__all__ = ["FOREACH_OPS", "FUNCTIONS", "TORCH_OPS", "Equation", "EquationError", "Tape", "TorchExpression",
           "compile_expressions", "complexity", "parse_equation", "predict", "round_floats", "torch_code"]
