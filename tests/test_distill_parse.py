"""The whitelist parser refuses anything but arithmetic on names; the sympy→torch table matches lambdify."""

import numpy as np
import pytest
import sympy as sp
import torch

from l2o.expr import TORCH_OPS, Equation, EquationError, TorchExpression, parse_equation


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "x.__class__", "(lambda: 1)()", "open('f')", "foo(x)", "x[0]",
    "'abc'", "x if y else z", "[x for x in y]", "exp(x, y)", "tanh(x=1)", "__x + 1", "float('nan')",
    "1e999 * x", "x / 0", "True + x", "x ** 100", "9 ** 9 ** 9", "x" * 10_001, "+".join(["x"] * 5000),
    "(" * 500 + "x" + ")" * 500, "", "   ", "x = 1", "x; y", "exp", "nan * x", "x + inf", "NaN", "oo",
])
def test_parser_rejects(text):
    with pytest.raises(EquationError):
        parse_equation(text)


def test_parser_rejects_unknown_variables_when_told_the_names():
    assert parse_equation("-0.01*g_0", variables={"g_0"}) == -0.01 * sp.Symbol("g_0", real=True)
    with pytest.raises(EquationError, match="unknown variable"):
        parse_equation("g_0 + os", variables={"g_0"})


def test_safe_operators_and_round_trip():
    e = parse_equation("log(x) + sqrt(y) + relu(x) + square(y) + cube(x) + pow(y, 0.5) + asinh(x) - sinh(y)")
    x, y = sp.symbols("x y", real=True)
    assert e.has(sp.Abs) and e.has(sp.Max) and e.has(x ** 3)
    eq = Equation(e, loss=0.1, r2=0.9, meta={"engine": "test"})
    back = Equation.from_json(eq.to_json())
    assert sp.simplify(back.expr - e) == 0 and back.r2 == 0.9 and back.meta == {"engine": "test"}
    assert eq.complexity > 10 and "\\log" in eq.latex()


# One expression per operator of the table, checked against sympy's own numpy translation.
OPERATOR_CASES = ["x + y", "x * y", "x ** 3", "x ** -1", "sqrt(y)", "pow(y, 1.7)", "exp(x)", "log(y)", "tanh(x)",
                  "sinh(x)", "asinh(x)", "sign(x)", "abs(x)", "relu(x)", "Max(x, y)", "Min(x, y)",
                  "-0.01*tanh(2.5*x) + 0.3*sign(y)*sqrt(y) + exp(-y)/3 + 2"]


@pytest.mark.parametrize("text", OPERATOR_CASES)
def test_torch_table_matches_lambdify_in_float64(text):
    expr = parse_equation(text)
    rng = np.random.default_rng(0)
    values = {"x": rng.normal(size=200), "y": rng.normal(size=200) * 3}
    symbols = sorted(expr.free_symbols, key=str)
    expected = sp.lambdify(symbols, expr, "numpy")(*(values[str(s)] for s in symbols))
    got = TorchExpression(expr)({k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()})
    np.testing.assert_allclose(got.numpy(), np.broadcast_to(expected, got.shape), rtol=1e-13, atol=1e-15)


def test_every_table_entry_is_exercised():
    heads = set()
    for text in OPERATOR_CASES:
        heads |= {type(n) for n in sp.preorder_traversal(parse_equation(text)) if not n.is_Atom}
    assert set(TORCH_OPS) <= heads


def test_constants_become_parameters_and_write_back():
    m = TorchExpression(parse_equation("0.5 * x + 2 * y ** 2 - 0.25"), learn_constants=True)
    assert sorted(m.constants.tolist()) == [-0.25, 0.5]  # the integer 2s (coefficient, exponent) stay fixed
    with torch.no_grad():
        m.constants.mul_(2)
    assert sorted(float(f) for f in m.to_sympy().atoms(sp.Float)) == [-0.5, 1.0]


def test_constant_fitting_recovers_true_constants():
    from l2o.distill.fit import fit_constants

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = -0.37 * np.tanh(1.8 * X[:, 0]) + 0.05 * X[:, 1] ** 2
    start = Equation(parse_equation("-0.1*tanh(1.0*g_0) + 0.2*g_1**2"))
    fitted, report = fit_constants(start, X, y, ["g_0", "g_1"])
    assert report.kept and report.r2_before < 0.9 and report.r2_after > 0.999999 and report.constants == 3
    values = sorted(float(c) for c in fitted.expr.atoms(sp.Float))
    np.testing.assert_allclose(values, [-0.37, 0.05, 1.8], rtol=1e-5)


def test_latex_subscripts_lagged_features():
    eq = Equation(parse_equation("-0.0123456*mt_ema98_1 + g_0"))
    assert eq.latex() == r"\mathrm{g}_{0} - 0.0123 \mathrm{mt\_ema98}_{1}"
