"""Stage 3: a rule's constants meta-learned by the same MetaTrainer as the LSTMs; the CLIs around it."""

import dataclasses
import importlib.util
import json

import pytest
import sympy as sp
import torch

from l2o.cli import main
from l2o.eval.optimizers import OptimizerSpec
from l2o.expr import parse_equation
from l2o.meta import MetaTrainConfig, MetaTrainer
from l2o.optim import SymbolicOptimizer, SymbolicRule
from l2o.optim.tune import psi_rule
from l2o.tasks import make_task


def test_rule_on_the_flat_vector_matches_the_optimizer():
    rule = SymbolicRule("-0.01*tanh(mt_0/0.5) - 0.002*g_2 + 0.001*mt_1").double()
    torch.manual_seed(0)
    p = torch.randn(50, dtype=torch.float64, requires_grad=True)
    flat = p.detach().clone()
    opt = SymbolicOptimizer([p], rule.to_sympy(), impl="single")
    state = rule.init_state(flat)
    for k in range(6):
        g = torch.cos(flat * 2 + k)
        p.grad = g.clone()
        opt.step()
        update, state = rule.step(g, state)
        flat = flat + update.detach()
    torch.testing.assert_close(p.detach(), flat, rtol=1e-12, atol=1e-14)


def test_meta_tuning_moves_the_constants_and_lowers_the_meta_loss():
    task = make_task("quadratic", dim=10, dtype=torch.float64)
    rule = SymbolicRule("-0.001*g_0").double()  # far too small a step: meta-training must grow it
    trainer = MetaTrainer(rule, task, MetaTrainConfig(epochs=6, epoch_len=40, unroll=20, meta_lr=0.05,
                                                      eval_every=100))
    first = trainer.train_epoch(0, 40)["meta_loss"]
    for epoch in range(1, 6):
        last = trainer.train_epoch(epoch, 40)["meta_loss"]
    coefficient = float(next(iter(rule.to_sympy().atoms(sp.Float))))
    assert coefficient < -0.0015  # grew (the sign says: step against the gradient)
    assert last < first


def test_psi_form_terms_are_independent_constants():
    expr = psi_rule(["mt", "gt"], [0, 1])
    rule = SymbolicRule(expr)
    assert len(expr.args) == 4 and rule.rule.constants.numel() == 8
    with pytest.raises(ValueError, match="feature"):
        psi_rule(["momentum"], [0])


def test_meta_tune_cli_writes_equation_and_optimizer(tmp_path):
    out = tmp_path / "tuned"
    code = main(["meta-tune", "--equation", "-0.005*tanh(mt_0/0.5) - 0.001*gt_0", "--task", "mnist_mlp",
                 "--task-opt", "batch_size=32", "--epochs", "2", "--epoch-len", "40", "--eval-every", "1",
                 "--eval-seeds", "1", "--no-progress", "--out", str(out)])
    assert code == 0
    doc = json.loads((out / "equation.json").read_text())
    tuned = parse_equation(doc["equation"])
    assert {str(s) for s in tuned.free_symbols} == {"mt_0", "gt_0"}
    assert tuned != parse_equation("-0.005*tanh(mt_0/0.5) - 0.001*gt_0")  # constants moved
    assert doc["meta"]["source_equation"] and len(doc["history"]) == 2
    spec = importlib.util.spec_from_file_location("tuned_rule", out / "optimizer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = torch.nn.Linear(3, 1)
    opt = module.MetaTunedRule(model.parameters())
    before = model.weight.detach().clone()
    model(torch.ones(2, 3)).sum().backward()
    opt.step()
    assert not torch.equal(before, model.weight)
    # the tuned rule runs in l2o eval beside the baselines
    assert main(["eval", "--task", "mnist_mlp", "--task-opt", "batch_size=32", "--optimizer",
                 f"symbolic:equation={out / 'equation.json'}", "--steps", "5", "--seeds", "1", "--no-progress",
                 "--out", str(tmp_path / "ev")]) == 0


def test_meta_tune_decay_learns_a_step_schedule(tmp_path):
    out = tmp_path / "tuned"
    assert main(["meta-tune", "--equation=-0.005*mt_0", "--decay", "1.5", "--task", "mnist_mlp",
                 "--task-opt", "batch_size=32", "--epochs", "2", "--epoch-len", "40", "--eval-every", "1",
                 "--eval-seeds", "1", "--no-progress", "--out", str(out)]) == 0
    doc = json.loads((out / "equation.json").read_text())
    tuned = parse_equation(doc["equation"])
    assert {str(s) for s in tuned.free_symbols} == {"mt_0", "step_0"}
    (rate,) = [float(a.args[0].as_coeff_Mul()[0]) for a in tuned.atoms(sp.exp)]
    assert rate < 0 and rate != -1.5  # exp(-k*step_0), k learned from 1.5
    assert doc["meta"]["decay_init"] == 1.5 and doc["meta"]["undecayed"] == "-0.005*mt_0"
    assert main(["meta-tune", "--equation=-0.005*mt_0", "--decay", "0", "--no-progress"]) != 0
    assert main(["meta-tune", "--equation=-0.005*mt_0", "--epochs", "many", "--no-progress"]) != 0


def test_meta_tune_and_export_reject_bad_input(tmp_path, capsys):
    assert main(["meta-tune", "--equation", "__import__('os')", "--no-progress", "--out", str(tmp_path / "x")]) != 0
    assert "error" in capsys.readouterr().err
    assert main(["meta-tune", "--no-progress"]) != 0  # neither --equation nor --psi
    assert main(["meta-tune", "--equation=-g_0", "--no-progress"]) != 0  # no constant to tune
    assert not (tmp_path / "x").exists()
    assert main(["export", "--equation=-0.01*mt_0", "--name", "My Rule!", "--out", str(tmp_path / "r.py")]) == 0
    assert "class MyRule(torch.optim.Optimizer)" in (tmp_path / "r.py").read_text()


def test_train_large_synthetic_smoke(tmp_path):
    out = tmp_path / "large"
    assert main(["train-large", "--model", "mobilenet_v2", "--dataset", "synthetic", "--epochs", "1",
                 "--limit-train", "64", "--limit-test", "64", "--batch-size", "32", "--no-progress",
                 "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert [r["optimizer"].split("(")[0] for r in doc["runs"]] == ["symbolic", "sgdm", "adam"]
    assert all(r["synthetic_data"] and "SYNTHETIC" in r["data"] for r in doc["runs"])
    assert all(0.0 <= r["history"][0]["test_accuracy"] <= 1.0 for r in doc["runs"])
    assert (out / "accuracy.png").stat().st_size > 1000


def test_the_tuned_rule_replaces_the_selected_one_only_on_fresh_optimizees(tmp_path):
    """Meta-tuning keeps the constants that did best on its own evaluation optimizees, so its figures
    flatter the tuned rule; the stage judges the two rules on fresh meta_valid optimizees instead. The
    tunings below report whatever loss the test wants (the fault: figures that say the opposite)."""
    from l2o.config import from_dict
    from l2o.expr import Equation
    from l2o.pipeline import PipelineConfig, Placement
    from l2o.pipeline.run import Run, read_json, write_json
    from l2o.pipeline.stages import COMPARE_SEED0, stage_meta_tune

    class Flattering(Placement):
        def __init__(self, tuned: str, claimed: float):
            super().__init__()
            self.tuned, self.claimed = tuned, claimed

        def meta_tune(self, source, task, config, device, dtype):
            return {"tuned": Equation(parse_equation(self.tuned)).to_dict(), "eval_loss_before": 1.0,
                    "eval_loss_after": self.claimed, "epochs": 0, "history": []}

    cfg = from_dict(PipelineConfig, {"task": {"name": "mnist_mlp", "options": {"batch_size": 32}},
                                     "meta_tune": {"epoch_len": 40, "compare_seeds": 2}})
    good, poor = "-0.01*tanh(mt_0/0.1)", "-1e-6*gt_0"
    for selected, tuned, claimed, replaced in ((good, poor, 1e-9, False), (poor, good, 1e9, True)):
        run = Run(tmp_path / str(replaced))
        write_json(run.stage("select") / "equations.json", {"update_rule": Equation(parse_equation(selected)).to_dict()})
        out = stage_meta_tune(cfg, run, Flattering(tuned, claimed))
        assert out["replaced"] is replaced
        assert out["compare"]["seeds"] == [COMPARE_SEED0, COMPARE_SEED0 + 1] and out["compare"]["steps"] == 40
        losses = out["compare"]["final_loss"]
        assert (losses["tuned"] < losses["selected"]) is replaced
        kept = read_json(run.stage("meta_tune") / "equation.json")["update_rule"]["equation"]
        assert parse_equation(kept) == parse_equation(tuned if replaced else selected)


def test_rules_are_judged_on_the_task_and_its_family():
    """A rule is chosen for the optimizees the LSTM was meta-trained on: the meta_valid seeds are dealt
    round the task and meta_train.family. Here a short step wins on the task alone (it starts near the
    optimum) and loses once a member starts 10⁴ times farther away, where the long step wins."""
    from l2o.config import from_dict
    from l2o.expr import Equation
    from l2o.pipeline import PipelineConfig, Placement
    from l2o.pipeline.stages import compare_rules, meta_valid_jobs

    near = {"name": "quadratic", "options": {"init_std": 0.01}}
    far = {"name": "quadratic", "options": {"init_std": 100.0}}
    rules = {"short": Equation(parse_equation("-0.1*tanh(mt_0)")), "long": Equation(parse_equation("-2*tanh(mt_0)"))}
    alone = from_dict(PipelineConfig, {"task": near})
    with_family = from_dict(PipelineConfig, {"task": near, "meta_train": {"family": [far]}})
    losses = compare_rules(alone, Placement(), rules, 100, (0, 1, 2, 3))
    assert losses["short"] < losses["long"] / 5
    losses = compare_rules(with_family, Placement(), rules, 100, (0, 1, 2, 3))
    assert losses["long"] < losses["short"] / 2

    spec = OptimizerSpec("symbolic", {"equation": "-0.1*gt_0"})
    jobs = meta_valid_jobs(with_family, spec, "r", 100, (10, 11, 12, 13, 14))
    assert [(j.task, j.seeds, j.split) for j in jobs] == [
        (with_family.task, (10, 12, 14), "meta_valid"), (with_family.meta_train.family[0], (11, 13), "meta_valid")]
    assert jobs[0].label == "r" and "init_std=100" in jobs[1].label
    assert [j.seeds for j in meta_valid_jobs(alone, spec, "r", 100, (10, 11))] == [(10, 11)]
    three = dataclasses.replace(with_family.meta_train, family=with_family.meta_train.family * 3)
    assert len(meta_valid_jobs(dataclasses.replace(with_family, meta_train=three), spec, "r", 100, (0, 1))) == 2


def test_meta_tune_config_rejects_no_comparison_seeds():
    from l2o.pipeline.config import MetaTuneConfig

    with pytest.raises(ValueError, match="compare_seeds"):
        MetaTuneConfig(compare_seeds=0)
