"""The CUDA paths compute what the CPU paths compute (float64), which other tests prove against references.

Skipped where no CUDA device is present. ``L2O_TEST_DEVICE=cpu`` runs the same comparisons CPU against CPU
(the torch fallbacks against the native kernels), which checks the tests themselves on a machine without one.
"""

import importlib.util
import math
import os

import numpy as np
import pytest
import torch

from l2o.expr import Equation, parse_equation
from l2o.eval import rollout
from l2o.eval.large import LargeRunConfig, load_data, train
from l2o.eval.optimizers import OptimizerSpec
from l2o.learned import CoordinateLSTM, lstm_config
from l2o.meta import MetaTrainConfig, MetaTrainer
from l2o.optim import LSTMOptimizer, SymbolicOptimizer
from l2o.optim.export import export_optimizer
from l2o.tasks import make_task

DEVICE = os.environ.get("L2O_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                                  reason="needs a CUDA device")]
D = torch.float64
SHAPES = [(64, 3, 3, 3), (257,), (1000, 33), (1,)]
RULE = ("-0.005*tanh(mt_0/0.3) - 0.004*tanh(mt_1/0.3) - 0.002*tanh(gt_0/0.7) + 0.001*g_2 - 1e-4*sign(g_ema99_0)"
        " + 0.0005*step_1*m_p25_0 + 0.001*log(abs(g_0) + 1e-3) - 0.001*g_ema90_3 + 0.01*m_2 + 0.002*mt_3"
        " - 0.002*mt_ema98_0 + 0.001*mt_ema995_2")


def _trajectory(make, device: str, steps: int = 6) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, dtype=D, generator=gen).to(device).requires_grad_() for s in SHAPES]
    opt = make(params)
    for k in range(steps):
        for p in params:
            g = torch.randn(p.shape, dtype=D, generator=gen)
            g.view(-1)[:3] = 0.0  # exact zeros (sign, log, zero second moment) must agree as well
            p.grad = g.to(device)
        opt.step()
    return torch.cat([p.detach().reshape(-1).cpu() for p in params])


@pytest.mark.parametrize("impl", ["single", "foreach", "compile"])
def test_symbolic_optimizer_paths_match_cpu(impl):
    expected = _trajectory(lambda ps: SymbolicOptimizer(ps, RULE, lr=0.5, impl="single"), "cpu")
    got = _trajectory(lambda ps: SymbolicOptimizer(ps, RULE, lr=0.5, impl=impl), DEVICE)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    assert not torch.equal(expected, _trajectory(lambda ps: SymbolicOptimizer(ps, RULE, lr=0.5), "cpu", steps=5))


def test_exported_optimizer_matches_on_device(tmp_path):
    path = tmp_path / "rule.py"
    path.write_text(export_optimizer(Equation(parse_equation(RULE)), name="Rule"))
    spec = importlib.util.spec_from_file_location("rule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = _trajectory(lambda ps: SymbolicOptimizer(ps, RULE, lr=0.5), "cpu")
    torch.testing.assert_close(_trajectory(lambda ps: module.Rule(ps, lr=0.5), DEVICE), expected,
                               rtol=1e-10, atol=1e-12)


def test_lstm_optimizer_matches_cpu():
    torch.manual_seed(1)
    l2o = CoordinateLSTM(lstm_config("rp")).double()
    expected = _trajectory(lambda ps: LSTMOptimizer(ps, l2o), "cpu")
    got = _trajectory(lambda ps: LSTMOptimizer(ps, l2o.to(DEVICE), chunk_size=5000), DEVICE)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("model,compile_", [("rp", False), ("dm", False), ("rp", True)])
def test_meta_training_epoch_matches_cpu(model, compile_):
    """One epoch of two windows on the MNIST MLP: same meta-losses and the same meta-gradient (the device
    run compiled or not, against the CPU's eager run)."""
    results = {}
    for device in ("cpu", DEVICE):
        task = make_task("mnist_mlp", device=device, dtype=D, batch_size=32)
        torch.manual_seed(0)
        l2o = CoordinateLSTM(lstm_config(model)).to(device, D)
        config = MetaTrainConfig(unroll=5, epoch_len=10, grad_clip=0.0, scale_range=0.5,
                                 compile=compile_ and device == DEVICE)
        trainer = MetaTrainer(l2o, task, config)
        stats = trainer.train_epoch(0, horizon=10)
        results[device] = stats, [p.detach().cpu().clone() for p in l2o.parameters()]
    (cpu_stats, cpu_weights), (dev_stats, dev_weights) = results["cpu"], results[DEVICE]
    assert math.isfinite(cpu_stats["meta_loss"])
    assert dev_stats["meta_loss"] == pytest.approx(cpu_stats["meta_loss"], rel=1e-9)
    for a, b in zip(dev_weights, cpu_weights):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10)


def test_lstm_optimizer_trains_the_mlp_like_cpu():
    torch.manual_seed(3)
    l2o = CoordinateLSTM(lstm_config("rp_si")).double()
    curves = {}
    for device in ("cpu", DEVICE):
        task = make_task("mnist_mlp", device=device, dtype=D, batch_size=64)
        net = l2o.to(device)
        curves[device] = rollout(task, lambda params: LSTMOptimizer(params, net), steps=8, seeds=[0],
                                 progress=False).losses[0]
    np.testing.assert_allclose(curves[DEVICE], curves["cpu"], rtol=1e-9)


def test_large_runner_with_a_symbolic_rule_learns(tmp_path):
    """ResNet-18 on the labelled synthetic stand-in, bf16 autocast on CUDA: the loss falls."""
    rule = tmp_path / "rule.json"
    rule.write_text(Equation(parse_equation("-0.005*tanh(mt_0/0.3) - 0.002*tanh(gt_0/0.7)")).to_json())
    config = LargeRunConfig(model="resnet18", dataset="synthetic", epochs=3, batch_size=128, limit_train=1024,
                            limit_test=512, amp=True)
    run = train(OptimizerSpec.parse(f"symbolic:equation={rule},lr=4"), config, load_data("synthetic"), DEVICE)
    losses = [h["train_loss"] for h in run["history"]]
    assert run["synthetic_data"] and len(losses) == 3 and all(map(math.isfinite, losses))
    assert losses[-1] < 0.8 * losses[0]
