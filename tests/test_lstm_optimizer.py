"""``LSTMOptimizer`` on ordinary modules: same trajectory as the flat rollout, exact state_dict resume."""

import json

import numpy as np
import pytest
import torch

from l2o.cli import main
from l2o.eval import OptimizerSpec, rollout
from l2o.learned import CoordinateLSTM, lstm_config, load_checkpoint
from l2o.meta import rollout_l2o
from l2o.optim import LSTMOptimizer
from l2o.tasks import make_task


def _l2o(model="rp"):
    torch.manual_seed(1)
    return CoordinateLSTM(lstm_config(model)).double()


def test_matches_the_flat_rollout_in_float64():
    task = make_task("mnist_mlp", dtype=torch.float64, batch_size=32)
    l2o = _l2o()
    expected = rollout_l2o(l2o, task, steps=12, seed=3)
    curves = rollout(task, lambda params: LSTMOptimizer(params, l2o), steps=12, seeds=[3], progress=False)
    np.testing.assert_allclose(curves.losses[0], expected, rtol=1e-10)


def test_chunks_change_nothing_but_memory():
    task = make_task("mnist_mlp", dtype=torch.float64, batch_size=32)
    l2o = _l2o()
    whole = rollout(task, lambda params: LSTMOptimizer(params, l2o, chunk_size=None), steps=6, seeds=[2],
                    progress=False)
    chunked = rollout(task, lambda params: LSTMOptimizer(params, l2o, chunk_size=5000), steps=6, seeds=[2],
                      progress=False)
    np.testing.assert_allclose(chunked.losses, whole.losses, rtol=1e-12)


def test_a_state_saved_with_one_chunking_resumes_under_another():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()  # 65
    x, y = torch.randn(32, 6, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)

    def step(opt, m):
        opt.zero_grad()
        torch.nn.functional.mse_loss(m(x), y).backward()
        opt.step()

    opt = LSTMOptimizer(model.parameters(), _l2o("rp_si"), chunk_size=None)
    for _ in range(3):
        step(opt, model)
    clone = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    clone.load_state_dict(model.state_dict())
    opt2 = LSTMOptimizer(clone.parameters(), _l2o("rp_si"), chunk_size=64)  # chunks of 64 and 1
    opt2.load_state_dict(opt.state_dict())
    for _ in range(3):
        step(opt, model)
        step(opt2, clone)
    assert [s.hidden[0].shape[-1] for s in opt2.lstm_state[0]] == [64, 1]
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="chunk_size"):
        LSTMOptimizer(model.parameters(), _l2o("rp_si"), chunk_size=0)


def test_state_dict_round_trip_mid_run_gives_identical_steps():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    x, y = torch.randn(32, 6, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)

    def step(opt, m):
        opt.zero_grad()
        torch.nn.functional.mse_loss(m(x), y).backward()
        opt.step()

    opt = LSTMOptimizer(model.parameters(), _l2o("rp_si"))
    for _ in range(3):
        step(opt, model)
    clone = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    clone.load_state_dict(model.state_dict())
    opt2 = LSTMOptimizer(clone.parameters(), _l2o("rp_si"))
    opt2.load_state_dict(opt.state_dict())
    for _ in range(3):
        step(opt, model)
        step(opt2, clone)
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)


def test_meta_train_cli_repeats_itself_with_one_seed(tmp_path):
    def run(name: str, seed: int) -> dict:
        argv = ["meta-train", "--task", "quadratic", "--epochs", "1", "--epoch-len", "20", "--unroll", "10",
                "--eval-every", "1", "--seed", str(seed), "--out", str(tmp_path / name), "--no-progress"]
        assert main(argv) == 0
        return load_checkpoint(tmp_path / name)

    a, b, c = run("a.pt", 3), run("b.pt", 3), run("c.pt", 4)
    assert a["train_state"]["history"] == b["train_state"]["history"]
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    assert not all(torch.equal(a["weights"][k], c["weights"][k]) for k in a["weights"])


def test_meta_train_cli_then_eval_with_the_checkpoint(tmp_path, capsys):
    ckpt = tmp_path / "rp.pt"
    argv = ["meta-train", "--task", "quadratic", "--epochs", "2", "--epoch-len", "20", "--unroll", "10",
            "--eval-every", "1", "--out", str(ckpt), "--no-progress"]
    assert main(argv) == 0
    doc = load_checkpoint(ckpt)
    assert doc["train_state"]["epoch"] == 2 and doc["l2o_config"]["model"] == "rp"
    # Resume to 3 epochs: continues from epoch 2.
    assert main(["meta-train", "--task", "quadratic", "--resume", str(ckpt), "--no-progress",
                 "--epochs", "3"]) == 0
    resumed = load_checkpoint(ckpt)
    assert resumed["train_state"]["epoch"] == 3 and len(resumed["train_state"]["history"]) == 3
    capsys.readouterr()
    assert main(["eval", "--task", "quadratic", "--optimizer", f"lstm:checkpoint={ckpt}", "--optimizer", "adam",
                 "--steps", "10", "--seeds", "2", "--out", str(tmp_path / "ev"), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"]
    assert summary[0]["label"].startswith("lstm(checkpoint=") and summary[0]["final_mean"] is not None
    assert OptimizerSpec.parse(f"lstm:checkpoint={ckpt}").build([torch.zeros(3)]).l2o.config.model == "rp"


def test_lr_weight_decay_schedulers_and_groups_added_mid_run():
    """A group's lr scales the LSTM's update and decoupled weight decay scales p by 1 - lr·wd before it; a
    torch scheduler drives lr; a group added mid-run steps as a new optimizer of its own would. Checked in
    float64 against the plain optimizer driven by hand."""
    torch.manual_seed(0)
    l2o = _l2o("rp")
    start = [torch.randn(7, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    late_start = torch.randn(4, dtype=torch.float64)
    ours, plain = [p.clone() for p in start], [p.clone() for p in start]
    late, late_ref = late_start.clone(), late_start.clone()
    opt = LSTMOptimizer(ours, l2o, lr=0.5, weight_decay=0.1)
    ref, ref_late = LSTMOptimizer(plain, l2o), None
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for k in range(6):
        lr = opt.param_groups[0]["lr"]
        assert lr == 0.5 * 0.5 ** (k // 2)
        if k == 3:
            opt.add_param_group({"params": [late], "lr": 2.0, "weight_decay": 0.0})
            ref_late = LSTMOptimizer([late_ref], l2o)
        before = [q.clone() for q in plain]
        for p, q in zip(ours, plain):
            p.grad = torch.sin(p * (k + 1))
            q.grad = torch.sin(q * (k + 1))
        ref.step()  # plain: p + u; ours must be p (1 - lr wd) + lr u
        with torch.no_grad():
            for q, b in zip(plain, before):
                q.copy_(b * (1 - lr * 0.1) + lr * (q - b))
        if ref_late is not None:
            late.grad, late_ref.grad = torch.cos(late * k), torch.cos(late_ref * k)
            b, late_lr = late_ref.clone(), opt.param_groups[1]["lr"]  # the scheduler halves it too
            assert late_lr == (2.0 if k < 4 else 1.0)
            ref_late.step()
            with torch.no_grad():
                late_ref.copy_(b + late_lr * (late_ref - b))
        opt.step()
        sched.step()
    for p, q in zip([*ours, late], [*plain, late_ref]):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    resumed = LSTMOptimizer([p.clone() for p in ours] + [late.clone()], l2o)
    resumed.add_param_group({"params": [torch.zeros(1, dtype=torch.float64)]})
    with pytest.raises(ValueError):
        resumed.load_state_dict(opt.state_dict())  # a different group layout
    with pytest.raises(ValueError, match="weight_decay"):
        LSTMOptimizer(ours, l2o, weight_decay=-1.0)
