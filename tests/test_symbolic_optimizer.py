"""SymbolicOptimizer: every implementation equals a slow sympy reference in float64; state and export.

The reference reads the feature registry's maths with ``sympy.lambdify`` on whole histories (every
moment, every step kept), independent of the step program and its ring buffers; a feature made up here
takes one registry entry and passes the same comparisons on every path.
"""

import copy
import importlib.util

import numpy as np
import pytest
import sympy as sp
import torch

from l2o.expr import parse_equation
from l2o.features import FEATURES, MOMENTS, Feature, RulePlan, ema, parse_variable, registered
from l2o.features import registry as reg
from l2o.optim import SymbolicOptimizer
from l2o.optim.symbolic import IMPLS

SHAPES = [(5, 3), (7,), (2, 2, 2), (1,)]
RULES = {
    # every feature, lags that are free (1 of stateful features), buffered (g, gt, lag ≥ 2) and step lags
    "all_features": ("-0.01*tanh(mt_0/0.5) - 0.003*tanh(gt_0) + 0.002*mt_1 - 0.001*g_2 + 0.0005*step_1*m_p25_0"
                     " - 0.001*g_ema90_3 + 0.0001*sqrt_vhat_1 + 0.001*asinh(mt_3) - 0.01*m_p3_2 + 0.02*gt_2"
                     " + 0.1*mhat_0*exp(-abs(g_ema50_1)) + 0.3*m_1 - sign(g_ema99_0)*1e-4 + 0.01*m_p2_1"
                     " - 0.004*tanh(mt_ema90_0) + 0.002*mt_ema98_1 - 0.003*mt_ema995_2"),
    "rp_style": "-0.005*tanh(mt_0/0.3) - 0.004*tanh(mt_1/0.3) - 0.002*tanh(gt_0/0.7)",
    "operators": "-0.01*sinh(0.5*mt_0) + 0.001*square(gt_0) - 0.001*cube(g_1) + 0.001*log(abs(g_0) + 1e-3) - relu(mt_0)*1e-3"
                 " + 0.002*sqrt(gt_1) + max(mt_0, gt_0)*1e-3 - 0.001*pow(mt_1, 1.5) + 1e-4/(1 + square(gt_0))",
}


def _grad(p: torch.Tensor, k: int) -> torch.Tensor:
    g = torch.sin(3 * p.detach() + k) + 0.1 * k
    if k == 3:
        g[..., 0] = 0.0  # exact zeros (log, sign, zero second moment) must agree as well
    return g


def _registry_step(g: np.ndarray, moments: dict, t: int, beta: float = 0.95, eps: float = 1e-8) -> dict:
    """Every registered moment after step t and every feature's value, by lambdify of the registry."""
    scalars = {reg.g: g, reg.t: t, reg.c: 1 - beta ** t, reg.BETA: beta, reg.EPS: eps}
    new: dict[str, np.ndarray] = {}
    while len(new) < len(MOMENTS):  # in dependency order
        for name, m in MOMENTS.items():
            if name not in new and all(d in new for d in m.needs):
                inputs = {**scalars, **{reg.s(d): new[d] for d in m.needs}}
                value = sp.lambdify(list(inputs), m.input, "numpy")(*inputs.values())
                decay = beta if m.decay == reg.BETA else float(m.decay)
                new[name] = decay * moments[name] + (1 - decay) * value
    values = {}
    for name, f in FEATURES.items():
        inputs = {**scalars, **{reg.s(d): new[d] for d in f.needs}}
        values[name] = np.broadcast_to(sp.lambdify(list(inputs), f.value, "numpy")(*inputs.values()), g.shape)
    return new, values


def reference(rule: str, steps: int, lr: float = 1.0) -> torch.Tensor:
    """Each tensor: the registry's maths on its gradient, full history kept, the rule by lambdify."""
    expr = parse_equation(rule)
    names = sorted(str(s) for s in expr.free_symbols)
    fn = sp.lambdify([sp.Symbol(n) for n in names], expr, "numpy")
    torch.manual_seed(0)
    params = [torch.randn(s, dtype=torch.float64) for s in SHAPES]
    moments = [{m: np.zeros(p.numel()) for m in MOMENTS} for p in params]
    history = [[] for _ in params]
    for k in range(steps):
        for i, p in enumerate(params):
            with np.errstate(all="ignore"):
                moments[i], values = _registry_step(_grad(p, k).reshape(-1).numpy(), moments[i], k + 1)
            history[i].append(values)
            args = []
            for n in names:
                f, lag = parse_variable(n)
                t = len(history[i]) - lag
                args.append(history[i][t - 1][f] if t >= 1 else np.zeros(p.numel()))
            with np.errstate(all="ignore"):
                update = np.broadcast_to(fn(*args), (p.numel(),))
            p += lr * torch.from_numpy(np.array(update)).view_as(p)
    return torch.cat([p.reshape(-1) for p in params])


def run(rule: str, impl: str, steps: int, lr: float = 1.0, dtype=torch.float64) -> torch.Tensor:
    torch.manual_seed(0)
    params = [torch.randn(s, dtype=dtype, requires_grad=True) for s in SHAPES]
    opt = SymbolicOptimizer(params, rule, lr=lr, impl=impl)
    for k in range(steps):
        for p in params:
            p.grad = _grad(p, k)
        opt.step()
    return torch.cat([p.detach().reshape(-1) for p in params])


@pytest.mark.parametrize("rule,impl", [(r, i) for r in sorted(RULES) for i in IMPLS])
def test_every_path_equals_sympy_reference_float64(rule, impl):
    ref = reference(RULES[rule], steps=7, lr=0.5)
    got = run(RULES[rule], impl, steps=7, lr=0.5)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    assert not torch.equal(ref, reference(RULES[rule], steps=6, lr=0.5))  # the steps moved the parameters


# A feature made up for the test: the bias-corrected EMA of g³ over its mean |g|, with a moment of its own.
CUBED = Feature("g3_test", (reg.s("g3m_test") / reg.c) / (sp.sqrt(reg.s("v") / reg.c) ** 3 + reg.EPS),
                "EMA of g^3 normalised by sqrt(v_hat)^3", (ema("g3m_test", sp.Rational(4, 5), reg.g ** 3),))
CUBED_RULE = "-0.01*tanh(g3_test_0) + 0.004*g3_test_1 - 0.002*g3_test_3 + 0.001*mt_0"


@pytest.mark.parametrize("impl", IMPLS)
def test_a_made_up_feature_takes_one_entry_on_every_path(impl, tmp_path):
    with registered(CUBED):
        ref = reference(CUBED_RULE, steps=7, lr=0.5)
        got = run(CUBED_RULE, impl, steps=7, lr=0.5)
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
        plan = RulePlan.of(parse_equation(CUBED_RULE))
        assert plan.state_keys == ("m", "v", "g3m_test", "hist_g3_test")  # lag 1 is free, lags 2-3 buffered
        from l2o.features import FeatureExtractor

        g = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
        rows, _ = FeatureExtractor(("g3_test", "mt")).update(g, FeatureExtractor(("g3_test", "mt")).init(g))
        by_hand = (0.2 * g ** 3 / 0.05) / ((0.05 * g ** 2 / 0.05).sqrt() ** 3 + 1e-8)  # t = 1: c = 1 - 0.95
        torch.testing.assert_close(rows[0], by_hand, rtol=1e-12, atol=0)
        if impl == "single":  # the exported file too
            _check_export(CUBED_RULE, tmp_path)
    assert "g3_test" not in FEATURES and "g3m_test" not in MOMENTS


def test_native_path_is_really_native():
    from l2o.optim import native_rule

    expr = parse_equation(RULES["all_features"])
    if native_rule.library(RulePlan.of(expr), expr) is None:
        pytest.skip("no C compiler here: the native path falls back to the single-tensor path")
    source = native_rule.c_source(RulePlan.of(expr), expr)
    assert "void rule_f32" in source and "void rule_f64" in source and "l2o_tanhf(" in source


@pytest.mark.parametrize("target", ["-march=native", "-march=x86-64-v3"])
def test_native_rule_loops_vectorise_with_and_without_avx512(target, tmp_path):
    """Every loop of the kernel vectorises, here and on an AVX2 target without masked vector operations
    (x86-64-v3), where gcc once left the pipelined loops scalar (tanh's clamps guard a division)."""
    import platform
    import re
    import shutil
    import subprocess

    from l2o.learned import native
    from l2o.optim import native_rule

    cc = shutil.which("gcc")
    if cc is None or platform.machine() != "x86_64":
        pytest.skip("needs gcc on x86-64 (the check reads gcc's vectoriser report)")
    expr = parse_equation(RULES["rp_style"])
    source = native_rule.c_source(RulePlan.of(expr), expr)
    path = tmp_path / "rule.c"
    path.write_text(source)
    flags = [f for f in native.cflags() if not f.startswith("-march=")] + [target, "-fopt-info-vec-optimized"]
    report = subprocess.run([cc, *flags, "-c", "-o", str(tmp_path / "rule.o"), str(path)],
                            capture_output=True, text=True, check=True).stderr
    # the loop after each pragma (gcc names its for line or the first line of its body)
    loops = [k + 2 for k, line in enumerate(source.splitlines()) if "omp simd" in line]
    assert len(loops) == 8  # four loops each in rule_f32 and rule_f64
    missed = [n for n in loops
              if not re.search(rf"rule\.c:({n}|{n + 1}):\d+: optimized: loop vectorized", report)]
    assert not missed, f"loops at lines {missed} of the generated kernel did not vectorise for {target}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_native_pipeline_covers_every_block_edge(dtype):
    """The native loop runs in blocks (features of one, the rule of the one before): tensors of one
    block less one, one, one more, two, and three and a bit, against the single-tensor path."""
    import re

    from l2o.optim import native_rule

    expr = parse_equation(RULES["all_features"])
    if native_rule.library(RulePlan.of(expr), expr) is None:
        pytest.skip("no C compiler here: the native path falls back to the single-tensor path")
    f32, f64 = native_rule.c_source(RulePlan.of(expr), expr).split("void rule_f64")
    B = int(re.search(r"j0 \+= (\d+)", f32 if dtype == torch.float32 else f64).group(1))
    sizes = [B - 1, B, B + 1, 2 * B, 3 * B + 5]
    got = {}
    for impl in ("single", "native"):
        torch.manual_seed(0)
        params = [torch.randn(n, dtype=dtype, requires_grad=True) for n in sizes]
        opt = SymbolicOptimizer(params, expr, lr=0.5, impl=impl)
        for k in range(6):
            for p in params:
                p.grad = _grad(p, k)
            opt.step()
        got[impl] = torch.cat([p.detach() for p in params])
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["native"], got["single"], **tol)


def test_native_float_tanh_keeps_its_stated_error_bound():
    """The float kernel's inline tanh, over a dense grid, every scale down to denormals, and ±0, ±inf, NaN."""
    from l2o.optim import native_rule

    expr = parse_equation("tanh(g_0)")
    if native_rule.library(RulePlan.of(expr), expr) is None:
        pytest.skip("no C compiler here: the native path falls back to the single-tensor path")
    tiny = torch.logspace(-45, 1.5, 200_000, dtype=torch.float64)
    x = torch.cat([torch.linspace(-12, 12, 2_000_001, dtype=torch.float64), tiny, -tiny]).float()
    p = torch.zeros_like(x, requires_grad=True)
    p.grad = x.clone()
    SymbolicOptimizer([p], expr, impl="native").step()  # p = 0 + 1.0 · tanh(g)
    ref = torch.tanh(x.double())
    err = ((p.detach().double() - ref).abs() / ref.abs().clamp_min(torch.finfo(torch.float64).tiny))[ref != 0]
    assert err.max().item() <= native_rule.TANHF_MAX_ERROR
    assert (p.detach()[ref == 0] == 0).all() and p.detach().abs().max() <= 1
    specials = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan")])
    q = torch.zeros(5, requires_grad=True)
    q.grad = specials.clone()
    SymbolicOptimizer([q], expr, impl="native").step()
    assert q.detach()[:4].tolist() == [0.0, 0.0, 1.0, -1.0] and q.detach()[4].isnan()


def test_float32_paths_agree():
    ref = run(RULES["rp_style"], "single", steps=10, dtype=torch.float32)
    for impl in ("foreach", "native", "compile"):
        torch.testing.assert_close(run(RULES["rp_style"], impl, steps=10, dtype=torch.float32), ref,
                                   rtol=1e-5, atol=1e-6)


def test_state_is_only_what_the_rule_needs():
    assert RulePlan.of(parse_equation(RULES["rp_style"])).state_keys == ("m", "v")  # mt_1 costs nothing
    plan = RulePlan.of(parse_equation("0.1*g_3 + 0.2*mt_2 + step_5"))
    assert plan.state_keys == ("m", "v", "hist_mt", "hist_g") and plan.state_floats() == 2 + 1 + 3
    p = torch.zeros(4, requires_grad=True)
    opt = SymbolicOptimizer([p], RULES["rp_style"])
    p.grad = torch.ones(4)
    opt.step()
    adam = torch.optim.Adam([q := torch.zeros(4, requires_grad=True)])
    q.grad = torch.ones(4)
    adam.step()
    adam_bytes = sum(t.numel() * t.element_size() for t in adam.state[q].values())
    assert opt.state_bytes() <= adam_bytes


@pytest.mark.parametrize("impl", IMPLS)
def test_state_dict_round_trip_mid_run(impl):
    rule = RULES["all_features"]
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    opt = SymbolicOptimizer(model.parameters(), rule, impl=impl)
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    closure = lambda m, o: lambda: (o.zero_grad(), torch.nn.functional.mse_loss(m(x), y).backward())  # noqa: E731
    for _ in range(5):
        opt.step(closure(model, opt))
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    for _ in range(3):
        opt.step(closure(model, opt))
    twin = copy.deepcopy(model)
    twin.load_state_dict(saved_model)
    opt2 = SymbolicOptimizer(twin.parameters(), rule, impl=impl)
    opt2.load_state_dict(saved_opt)
    for _ in range(3):
        opt2.step(closure(twin, opt2))
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


def test_param_groups_closure_and_errors():
    a, b = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    opt = SymbolicOptimizer([{"params": [a]}, {"params": [b], "lr": 0.0}], "-0.1*g_0")
    loss = opt.step(lambda: (a.sum() + b.sum()).backward() or torch.tensor(1.5))
    assert float(loss) == 1.5
    assert torch.allclose(a, torch.full((3,), 0.9)) and torch.equal(b, torch.ones(3))
    with pytest.raises(ValueError, match="learning rate"):
        SymbolicOptimizer([a], "-g_0", lr=-1)
    with pytest.raises(ValueError, match="feature"):
        SymbolicOptimizer([a], "-0.1*grad_0")
    with pytest.raises(ValueError, match="impl"):
        SymbolicOptimizer([a], "-0.1*g_0", impl="fast")
    with pytest.raises(ValueError):
        SymbolicOptimizer([a], "__import__('os')")


@pytest.mark.parametrize("rule", sorted(RULES))
def test_exported_file_matches_step_for_step(rule, tmp_path):
    _check_export(RULES[rule], tmp_path)


def _check_export(rule: str, tmp_path):
    from l2o.expr import Equation
    from l2o.optim.export import export_optimizer

    eq = Equation(parse_equation(rule), r2=0.97, meta={"source": "test"})
    path = tmp_path / "my_rule.py"
    path.write_text(export_optimizer(eq, name="MyRule"))
    source = path.read_text()
    assert "import l2o" not in source and "from l2o" not in source and "LaTeX: " in source and ".. math::" in source
    spec = importlib.util.spec_from_file_location("my_rule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    params = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    twins = [p.detach().clone().requires_grad_() for p in params]
    ours, theirs = SymbolicOptimizer(params, eq, lr=0.5, impl="single"), module.MyRule(twins, lr=0.5)
    for k in range(7):
        for p, q in zip(params, twins):
            p.grad, q.grad = _grad(p, k), _grad(q, k)
        ours.step()
        theirs.step()
        for p, q in zip(params, twins):
            torch.testing.assert_close(q, p, rtol=1e-10, atol=1e-12)


def test_compile_path_regroups_when_a_tensor_has_no_gradient():
    """The compile path's flat buffers follow the set of tensors with gradients, state kept exactly."""
    results = []
    for impl in ("foreach", "compile"):
        torch.manual_seed(0)
        params = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
        opt = SymbolicOptimizer(params, RULES["all_features"], lr=0.5, impl=impl)
        for k in range(6):
            for i, p in enumerate(params):
                p.grad = None if (k == 2 and i == 1) or (k == 4 and i != 0) else _grad(p, k)
            opt.step()
        results.append((torch.cat([p.detach().reshape(-1) for p in params]),
                        [int(opt.state[p]["step"]) for p in params]))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-10, atol=1e-12)
    assert results[1][1] == results[0][1] == [6, 4, 5, 5]


@pytest.mark.parametrize("impl", IMPLS)
def test_weight_decay_maximize_and_torch_schedulers(impl):
    """Decoupled weight decay scales p by 1 - lr·wd before the rule; maximize feeds the rule -grad; a torch
    scheduler's lr reaches the step. Checked against the plain optimizer driven by hand, in float64."""
    rule = RULES["rp_style"]
    torch.manual_seed(0)
    start = [torch.randn(s, dtype=torch.float64) for s in SHAPES]
    ours = [p.clone().requires_grad_() for p in start]
    plain = [p.clone().requires_grad_() for p in start]
    opt = SymbolicOptimizer(ours, rule, lr=2.0, impl=impl, weight_decay=0.05, maximize=True)
    ref = SymbolicOptimizer(plain, rule, lr=2.0, impl=impl)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    ref_sched = torch.optim.lr_scheduler.StepLR(ref, step_size=2, gamma=0.5)
    for k in range(6):
        lr = opt.param_groups[0]["lr"]
        assert lr == 2.0 * 0.5 ** (k // 2)
        for p, q in zip(ours, plain):
            p.grad = _grad(p, k)
            q.grad = -_grad(q, k)
        with torch.no_grad():
            for q in plain:
                q.mul_(1 - lr * 0.05)
        opt.step()
        ref.step()
        sched.step()
        ref_sched.step()
    for p, q in zip(ours, plain):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="weight_decay"):
        SymbolicOptimizer(ours, rule, weight_decay=-1.0)
