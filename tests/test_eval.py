"""The evaluation harness: exact against hand-written optimizers in float64, honest about divergence."""

import json
import math

import numpy as np
import pytest
import torch

from l2o.eval import (OptimizerSpec, format_table, load_json, lr_grid, plot_curves, rollout, save_csv,
                      save_json, tune_lr)
from l2o.tasks import make_task


def _quadratic():
    return make_task("quadratic", dim=6, noise_std=0.1, dtype=torch.float64)


def _hand_adam(task, seed, steps, lr=0.05, b1=0.9, b2=0.999, eps=1e-8):
    theta = task.init(seed)["theta"].clone()
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    batches, losses = task.batches("eval", seed), []
    for t in range(1, steps + 1):
        w, y = next(batches)
        r = w @ theta - y
        losses.append(float((r ** 2).sum()))
        g = 2 * w.T @ r  # analytic gradient of ||W θ - y||²
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        theta = theta - lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
    return np.array(losses)


def test_harness_matches_hand_written_adam_in_float64():
    task = _quadratic()
    curves = rollout(task, OptimizerSpec.parse("adam:lr=0.05"), steps=60, seeds=[0, 1, 2], progress=False)
    for row, seed in enumerate([0, 1, 2]):
        np.testing.assert_allclose(curves.losses[row], _hand_adam(task, seed, 60), rtol=1e-12, atol=1e-12)
    assert curves.losses[:, -1].mean() < 0.1 * curves.losses[:, 0].mean()


def test_gradients_are_zeroed_every_step():
    """Plain SGD through the harness equals θ ← θ − lr·∇f(θ): accumulated gradients would not."""
    task, lr = _quadratic(), 0.01
    curves = rollout(task, OptimizerSpec.parse(f"sgd:lr={lr}"), steps=20, seeds=[0], progress=False)
    theta, batches = task.init(0)["theta"].clone(), task.batches("eval", 0)
    for t in range(20):
        w, y = next(batches)
        r = w @ theta - y
        assert curves.losses[0, t] == pytest.approx(float((r ** 2).sum()), rel=1e-12)
        theta = theta - lr * 2 * w.T @ r


def test_divergence_is_counted_not_hidden():
    curves = rollout(_quadratic(), OptimizerSpec.parse("sgd:lr=10"), steps=200, seeds=[0, 1], progress=False)
    assert curves.final() == math.inf and curves.summary()["diverged"] == 2
    assert curves.summary()["final_mean"] is None  # stays valid JSON
    assert np.isnan(curves.losses[:, -1]).all()


def test_mean_std_and_final():
    curves = rollout(_quadratic(), OptimizerSpec.parse("adam:lr=0.05"), steps=30, seeds=[0, 1, 2], progress=False)
    np.testing.assert_allclose(curves.mean(), curves.losses.mean(0))
    np.testing.assert_allclose(curves.std(), curves.losses.std(0))
    assert curves.final() == pytest.approx(curves.losses[:, -10:].mean())


def test_optimizer_specs():
    spec = OptimizerSpec.parse("sgdm:lr=0.05,nesterov=true")
    opt = spec.build([torch.zeros(2, requires_grad=True)])
    assert isinstance(opt, torch.optim.SGD)
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["nesterov"] is True and opt.defaults["lr"] == 0.05
    assert OptimizerSpec.parse("adam:betas=0.8/0.99").build([torch.zeros(1)]).defaults["betas"] == (0.8, 0.99)
    assert isinstance(OptimizerSpec.parse("torch.optim:Adagrad,lr=0.1").build([torch.zeros(1)]),
                      torch.optim.Adagrad)
    assert spec.label == "sgdm(lr=0.05,momentum=0.9,nesterov=True)"
    for bad in ("adamm", "adam:lr", "adam:lr=nan", "os:system", "torch.nn:Linear"):
        with pytest.raises((ValueError, AttributeError, ImportError)):
            OptimizerSpec.parse(bad)


def test_tune_lr_picks_the_lowest_final_loss():
    task = _quadratic()
    best, runs = tune_lr(task, OptimizerSpec.parse("adam"), steps=40, seeds=[0, 1], lrs=[1e-4, 1e-2, 1e-1],
                         progress=False)
    assert len(runs) == 3 and best.final() == min(r.final() for r in runs)
    assert best.label.startswith("tuned adam(lr=0.1")
    assert lr_grid(1e-3) == (0.0001, 0.000316, 0.001, 0.00316, 0.01)


def test_results_round_trip_and_plot(tmp_path):
    task = _quadratic()
    curves = [rollout(task, OptimizerSpec.parse(s), steps=80, seeds=[0, 1], progress=False)
              for s in ("adam:lr=0.05", "sgd:lr=10")]  # the second overflows float64
    save_json(curves, tmp_path / "r.json", note="x")
    back = load_json(tmp_path / "r.json")
    np.testing.assert_array_equal(back[0].losses, curves[0].losses)
    assert np.isnan(back[1].losses).any() and json.loads((tmp_path / "r.json").read_text())["note"] == "x"
    rows = (save_csv(curves, tmp_path / "c.csv")).read_text().splitlines()
    assert rows[0] == "label,step,mean,std,seeds" and len(rows) == 1 + 2 * 80
    png = plot_curves(curves, tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "diverged" in format_table(curves)


def test_geometric_final_loss_weighs_every_seed_and_refuses_divergence():
    """Near convergence one seed's final loss may be 1e-9 and another's 1e-5: the mean follows the worst
    seed, the geometric mean each seed's orders of magnitude."""
    import math

    import numpy as np

    from l2o.eval.rollout import Curves, final_geometric

    def curves(finals):
        return Curves("c", {}, list(range(len(finals))), np.repeat(np.array(finals, float)[:, None], 20, 1))

    mostly_better, steady = curves([1e-9, 1e-9, 1e-9, 1e-5]), curves([1e-6] * 4)
    assert mostly_better.final() > steady.final()  # the arithmetic mean prefers the steady rule ...
    assert mostly_better.final_geometric() < steady.final_geometric()  # ... the geometric one does not
    assert math.isclose(mostly_better.final_geometric(), 1e-8, rel_tol=1e-9)
    assert curves([0.0, 1e-6]).final_geometric() >= 0.0
    assert curves([1e-3, float("nan")]).final_geometric() == math.inf
    # over several optimizees' curves: the geometric mean of all their runs, each run weighing alike
    assert math.isclose(final_geometric([curves([1e-9, 1e-9]), curves([1e-3])]), 1e-7, rel_tol=1e-9)
    assert final_geometric([curves([1e-9]), curves([1e-3, float("inf")])]) == math.inf
    with pytest.raises(ValueError, match="at least one"):
        final_geometric([])
