"""The engine contract, run on every engine that can run here; pysr is skipped where Julia is missing."""

import dataclasses
import importlib.util

import numpy as np
import pytest
import sympy as sp

from l2o.expr import Equation
from l2o.distill.engines import ENGINES, holdout_split, make_engine, r2_score
from l2o.expr import predict
from l2o.distill.fit import fit_constants

NAMES = ["g_0", "g_1", "g_2"]


def _pysr_ready() -> bool:
    # Importing pysr downloads Julia on first use; a test must not reach the network.
    return importlib.util.find_spec("pysr") is not None and importlib.util.find_spec("juliacall") is not None


ENGINE_PARAMS = [pytest.param("pysr", marks=pytest.mark.skipif(
    not _pysr_ready(), reason="pysr needs Julia + SymbolicRegression.jl, which this machine cannot download"))
    if e == "pysr" else e for e in ENGINES]


def _data(f, n=600, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, len(NAMES)))
    return X, f(X)


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_engine_contract(engine):
    X, y = _data(lambda X: 0.5 * X[:, 0] - 0.2 * X[:, 1])
    est = make_engine(engine, generations=15, population=200, seed=1)
    assert est.fit(X, y, NAMES) is est
    assert est.pareto_front_ and isinstance(est.best_, Equation) and est.best_ in est.pareto_front_
    complexities = [e.complexity for e in est.pareto_front_]
    losses = [e.loss for e in est.pareto_front_]
    assert complexities == sorted(complexities) and losses == sorted(losses, reverse=True)  # non-dominated
    assert {str(s) for s in est.best_.expr.free_symbols} <= set(NAMES)
    assert est.best_.meta["engine"] == engine and est.seconds_ > 0
    assert all(-np.inf < e.r2 <= 1.0 for e in est.pareto_front_)


def test_operon_recovers_a_linear_rule_exactly():
    X, y = _data(lambda X: -0.01 * X[:, 0])
    best = make_engine("operon", generations=20, population=300).fit(X, y, NAMES).best_
    assert best.r2 > 0.999999
    const = [float(c) for c in best.expr.atoms(sp.Float) if abs(float(c)) > 1e-6]
    assert any(abs(c + 0.01) < 1e-6 for c in const) and best.expr.free_symbols == {sp.Symbol("g_0", real=True)}


def test_constant_fitting_holds_out_the_rows_the_search_held_out():
    X, y = _data(lambda X: 0.5 * X[:, 0] + 0.3 * np.random.default_rng(9).normal(size=len(X)))
    est = make_engine("operon", generations=5, population=100, seed=7).fit(X, y, NAMES)
    hold, rest = holdout_split(len(y), est.holdout, est.seed)
    assert len(hold) == 120 and sorted([*hold, *rest]) == list(range(len(y)))
    on_hold = r2_score(y[hold], predict(est.best_.expr, X[hold], NAMES))
    assert est.best_.r2 == pytest.approx(on_hold, abs=1e-12)
    _, report = fit_constants(est.best_, X, y, NAMES, holdout=est.holdout, seed=est.seed)
    assert report.r2_before == pytest.approx(est.best_.r2, abs=1e-12)  # the same rows
    _, other = fit_constants(est.best_, X, y, NAMES, holdout=est.holdout, seed=0)
    assert other.r2_before != pytest.approx(est.best_.r2, abs=1e-6)  # y is noisy: other rows, another R²


def test_selection_by_accuracy_takes_the_simplest_good_equation():
    X, y = _data(lambda X: X[:, 0] * X[:, 1] + 0.1 * np.tanh(X[:, 2]))
    est = make_engine("operon", generations=30, population=400, selection="accuracy", r2_threshold=0.95)
    est.fit(X, y, NAMES)
    good = [e for e in est.pareto_front_ if (e.meta["validation_r2"] or -np.inf) >= 0.95]
    assert good and est.best_ is good[0]


def test_selection_passes_over_an_equation_that_blows_up_on_unseen_rows():
    from l2o.expr import Equation

    x = sp.Symbol("g_0", real=True)
    plain = Equation(-0.5 * x, loss=1e-2, meta={"validation_r2": 0.90})
    # fits the searched rows far better, but a row outside them sends sinh off: validation R² −4
    wild = Equation(-0.5 * x + sp.Float(1e-3) * sp.sinh(12 * x), loss=1e-4, meta={"validation_r2": -4.0})
    for selection in ("score", "accuracy"):
        assert make_engine("operon", selection=selection)._choose([plain, wild]) is plain


def test_bad_settings_and_inputs_are_rejected():
    with pytest.raises(ValueError, match="unknown engine"):
        make_engine("eureqa")
    with pytest.raises(ValueError, match="unknown operator"):
        make_engine("operon", operators=("add", "gamma"))
    with pytest.raises(ValueError, match="do not agree"):
        make_engine("operon").fit(np.zeros((20, 2)), np.zeros(20), NAMES)
    with pytest.raises(ValueError, match="finite"):
        make_engine("operon").fit(np.full((20, 3), np.nan), np.zeros(20), NAMES)


def test_pysr_missing_gives_instructions(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pysr(name, *args, **kwargs):
        if name == "pysr":
            raise ImportError("No module named 'pysr'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pysr)
    X, y = _data(lambda X: X[:, 0])
    with pytest.raises(RuntimeError, match="Julia"):
        make_engine("pysr").fit(X, y, NAMES)


def test_r2():
    y = np.array([1.0, 2.0, 3.0])
    assert r2_score(y, y) == 1.0 and r2_score(y, np.full(3, 2.0)) == 0.0
    assert r2_score(y, np.array([1.0, np.nan, 3.0])) == -np.inf


def test_selection_keeps_to_its_complexity_bound():
    from l2o.distill import SelectConfig, choose_by_rollout, eligible

    def cand(nodes):
        return {"complexity": nodes - 3, "update_rule": {"equation": "-0.01*tanh(g_0)", "complexity": nodes}}

    candidates = [cand(n) for n in (8, 19, 20, 24, 31)]
    assert [c["update_rule"]["complexity"] for c in eligible(candidates, SelectConfig())] == [8, 19, 20]
    assert len(eligible(candidates, SelectConfig(max_complexity=None))) == 5
    assert len(eligible(candidates, SelectConfig(max_complexity=None, max_candidates=2))) == 2
    assert len(eligible(candidates, SelectConfig(by="r2", max_complexity=None, max_candidates=2))) == 5
    pool = eligible(candidates, SelectConfig())  # the 24-node rule, best by rollout, is out of bounds
    assert choose_by_rollout([c["update_rule"]["complexity"] for c in pool], [0.3, 0.104, 0.1]) == 1
    with pytest.raises(ValueError, match="at most 5 nodes.*simplest has 8"):
        eligible(candidates, SelectConfig(max_complexity=5))
    with pytest.raises(ValueError, match="max_complexity"):
        SelectConfig(max_complexity=0)


def test_the_pipeline_bounds_the_rule_as_meta_tuning_will_leave_it():
    from l2o.distill import SelectConfig, eligible
    from l2o.expr import Equation
    from l2o.optim.tune import with_decay
    from l2o.pipeline import PipelineConfig
    from l2o.pipeline.stages import final_size

    rules = ["-0.01*mt_0", "-0.01*tanh(mt_0/0.5) - 0.002*gt_0", "-0.01*tanh(mt_0/0.5 + gt_0/0.3) - 0.002*gt_0"]
    candidates = [{"update_rule": Equation.from_dict({"equation": t}).to_dict()} for t in rules]
    sizes = [c["update_rule"]["complexity"] for c in candidates]
    decayed = [with_decay(Equation.from_dict({"equation": t}), 1.0).complexity for t in rules]
    assert all(d > s for d, s in zip(decayed, sizes))
    cap = decayed[1]  # the second fits with its decay factor; the third only without it
    assert sizes[2] <= cap < decayed[2]
    cfg = PipelineConfig(select=SelectConfig(max_complexity=cap))
    assert [c["update_rule"]["complexity"] for c in eligible(candidates, cfg.select, final_size(cfg))] == sizes[:2]
    for plain in (dataclasses.replace(cfg, meta_tune=dataclasses.replace(cfg.meta_tune, decay=None)),
                  dataclasses.replace(cfg, meta_tune=dataclasses.replace(cfg.meta_tune, enabled=False)),
                  dataclasses.replace(cfg, stages=tuple(s for s in cfg.stages if s != "meta_tune"))):
        assert final_size(plain) is None
        assert len(eligible(candidates, plain.select, final_size(plain))) == 3
    with pytest.raises(ValueError, match="simplest has 7 with the decay factor"):
        eligible(candidates, SelectConfig(max_complexity=5), final_size(cfg))
