"""Every task: deterministic init, a differentiable loss, and a loss that falls under Adam in 50 steps."""

import pytest
import torch

from l2o.eval import OptimizerSpec, rollout
from l2o.tasks import PRESETS, TASK_NAMES, make_task

# CIFAR presets run on MNIST here (no CIFAR offline); batch sizes keep the big nets to seconds.
OFFLINE = {
    "quadratic": {},
    "mnist_mlp": {},
    "mnist_mlp_deep": {},
    "mnist_cnn": {},
    "cifar_half_cnn": {"dataset": "mnist", "classes": 5},
    "resnet18_cifar10": {"dataset": "mnist", "batch_size": 16},
    "resnet50_cifar10": {"dataset": "mnist", "batch_size": 8},
    "mobilenet_v2_cifar10": {"dataset": "mnist", "batch_size": 16},
}
SLOW = {"resnet18_cifar10", "resnet50_cifar10", "mobilenet_v2_cifar10"}


def test_every_task_is_covered():
    assert set(OFFLINE) == set(TASK_NAMES)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in OFFLINE])
def test_loss_falls_under_adam(name):
    task = make_task(name, **OFFLINE[name])
    curves = rollout(task, OptimizerSpec.parse("adam:lr=1e-3" if name != "quadratic" else "adam:lr=0.1"),
                     steps=50, seeds=[0], progress=False)
    losses = curves.losses[0]
    assert all(map(torch.isfinite, torch.as_tensor(losses)))
    assert losses[-5:].mean() < 0.75 * losses[:5].mean(), losses


def test_init_is_seeded_and_paper_scaled():
    task = make_task("mnist_mlp")
    a, b, c = task.init(0), task.init(0), task.init(1)
    assert list(a) == ["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"]
    assert [tuple(v.shape) for v in a.values()] == [(30, 784), (30,), (20, 30), (20,), (10, 20), (10,)]
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["1.weight"], c["1.weight"])
    assert abs(a["1.weight"].std().item() - 0.01) < 0.001  # N(0, 0.01^2), the paper's optimizee sampling


def test_batchnorm_statistics_survive_reinit():
    task = make_task("resnet18_cifar10", dataset="mnist", batch_size=4)
    task.loss(task.init(0), next(task.batches("meta_train", 0)))  # a train-mode forward moves the stats
    bn = task.module.bn1
    before = bn.running_mean.clone()
    assert before.abs().sum() > 0
    task.init(1)
    assert torch.equal(bn.running_mean, before)
    assert torch.equal(task.init(1)["bn1.weight"], torch.ones(64))


def test_float64_task_runs_in_float64():
    task = make_task("mnist_mlp", dtype=torch.float64)
    params = task.init(0)
    x, _ = next(task.batches("eval", 0))
    assert params["1.weight"].dtype == x.dtype == torch.float64
    assert task.loss(params, next(task.batches("eval", 0))).dtype == torch.float64


def test_quadratic_splits_draw_different_problems():
    task = make_task("quadratic")
    w_train, _ = next(task.batches("meta_train", 0))
    w_eval, _ = next(task.batches("eval", 0))
    assert not torch.equal(w_train, w_eval)


def test_bad_task_options_are_rejected():
    with pytest.raises(ValueError, match="unknown task"):
        make_task("mnist_transformer")
    with pytest.raises(ValueError, match="unknown setting"):
        make_task("mnist_mlp", hiddn=(3,))
    with pytest.raises(ValueError, match="unknown architecture"):
        make_task("mnist_mlp", arch="vgg")
    assert set(PRESETS) <= set(TASK_NAMES)
