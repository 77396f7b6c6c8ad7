"""Meta-training: the fast meta-gradient equals plain autograd, resume is exact, NaN windows are counted."""

import copy

import pytest
import torch

from l2o.learned import CoordinateLSTM, lstm_config
from l2o.meta.checkpoint import load_checkpoint, restore_trainer, save_checkpoint
from l2o.meta import BadWindowsError, MetaTrainConfig, MetaTrainer, rollout_l2o
from l2o.meta.flat import FlatParams
from l2o.meta.trainer import _seed
from l2o.tasks import make_task

D = torch.float64


def _rp(dtype=torch.float32, **kw):
    torch.manual_seed(0)
    return CoordinateLSTM(lstm_config("rp", **kw)).to(dtype)


@pytest.mark.parametrize("scale_range", [0.0, 1.0])
def test_window_meta_gradient_equals_autograd_through_the_optimizee(scale_range):
    task = make_task("quadratic", dim=5, noise_std=0.1, dtype=D)
    cfg = MetaTrainConfig(unroll=6, epoch_len=6, grad_clip=0.0, scale_range=scale_range)
    l2o = _rp(D)
    reference = copy.deepcopy(l2o)
    trainer = MetaTrainer(l2o, task, cfg)
    trainer.train_epoch(0, horizon=6)
    fast = [p.grad.clone() for p in l2o.parameters()]

    # The same window written plainly: the meta-loss back-propagated through the optimizee's updates.
    seed = _seed(cfg.seed, 0)
    layout = FlatParams(task.init(seed))
    theta = layout.flatten(task.init(seed))
    scale = torch.ones_like(theta)
    if scale_range:
        gen = torch.Generator().manual_seed(seed)
        scale = torch.empty(theta.numel(), dtype=D).uniform_(-scale_range, scale_range, generator=gen).exp()
    phi, batches = theta / scale, task.batches("meta_train", seed)
    state = reference.init_state(phi)
    meta_loss = 0
    for t in range(7):  # 6 updates, then the loss after the last one
        batch = next(batches)
        leaf = phi.detach().requires_grad_()
        g = torch.autograd.grad(task.loss(layout.unflatten(leaf * scale), batch), leaf)[0]  # w.r.t. φ, detached
        meta_loss = meta_loss + task.loss(layout.unflatten(phi * scale), batch)
        if t < 6:
            update, state = reference.step(g, state)
            phi = phi + update
    meta_loss.backward()
    for a, p in zip(fast, reference.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-9, atol=1e-12)


def test_resume_gives_the_identical_next_meta_loss(tmp_path):
    task = make_task("quadratic")
    cfg = MetaTrainConfig(epochs=3, epoch_len=40, unroll=10, eval_every=100, scale_range=0.5, imitation_prob=0.3)
    trainer = MetaTrainer(_rp(), task, cfg)
    trainer.state.epoch = 0
    for _ in range(2):
        trainer.train_epoch(trainer.state.epoch, 40)
        trainer.state.epoch += 1
    path = save_checkpoint(tmp_path / "c.pt", trainer, {"name": "quadratic"})
    expected = trainer.train_epoch(2, 40)
    assert expected["meta_loss"] is not None and expected["imitation_loss"] is not None  # both kinds ran
    resumed = restore_trainer(MetaTrainer(_rp(), task, cfg), load_checkpoint(path))
    assert resumed.state.epoch == 2
    assert resumed.train_epoch(2, 40) == expected


def test_nan_window_is_skipped_counted_and_bounded():
    task = make_task("quadratic")
    l2o = CoordinateLSTM(lstm_config("dm", output_scale=1e38))  # steps overflow float32 at once
    trainer = MetaTrainer(l2o, task, MetaTrainConfig(epoch_len=20, unroll=10, max_bad_windows=1))
    before = copy.deepcopy(l2o.state_dict())
    record = trainer.train_epoch(0, 20)
    assert record["bad_windows"] == 1 and trainer.state.bad_windows == 1
    assert all(torch.equal(before[k], v) for k, v in l2o.state_dict().items())  # no meta-step taken
    with pytest.raises(BadWindowsError, match="max_bad_windows=1"):
        trainer.train_epoch(1, 20)


def test_two_epochs_on_quadratics_lower_the_meta_loss():
    task = make_task("quadratic")
    trainer = MetaTrainer(_rp(), task, MetaTrainConfig(epoch_len=100, unroll=10, meta_lr=1e-2))
    before = trainer.evaluate(steps=100, seeds=4)
    for epoch in range(2):
        trainer.train_epoch(epoch, 100)
    assert trainer.evaluate(steps=100, seeds=4) < 0.8 * before


def test_curriculum_advances_when_evaluation_stalls_then_stops():
    """With meta_lr = 0 nothing improves, so each level lasts exactly 1 + patience evaluations."""
    cfg = MetaTrainConfig(epochs=50, curriculum=(20, 40), unroll=10, eval_every=1, patience=1, meta_lr=0.0)
    trainer = MetaTrainer(_rp(), make_task("quadratic"), cfg)
    seen = []
    st = trainer.fit(seen.append)
    assert [r["horizon"] for r in seen] == [20, 20, 40, 40] and seen[1]["advanced_to"] == 40
    assert st.done and st.epoch == 4 and st.best_eval == seen[2]["eval_loss"]


def test_fit_restores_the_best_weights():
    cfg = MetaTrainConfig(epochs=6, epoch_len=40, unroll=10, eval_every=1, patience=10, meta_lr=3e-2)
    trainer = MetaTrainer(_rp(), make_task("quadratic"), cfg)
    st = trainer.fit()
    assert trainer.evaluate(40) == pytest.approx(st.best_eval, rel=1e-5)
    assert st.best_eval == min(r["eval_loss"] for r in st.history)


def test_rollout_l2o_reports_every_step():
    losses = rollout_l2o(_rp(), make_task("quadratic"), steps=15, seed=0)
    assert len(losses) == 15 and all(map(lambda v: v == v, losses))


def test_compiled_window_equals_eager():
    """``compile=True`` (the GPU form: torch cell kernels, ``torch.func`` gradients) changes nothing but
    rounding (fused kernels may add in another order)."""
    task = make_task("mnist_mlp", dtype=D, batch_size=32)
    stats = []
    for compile_ in (False, True):
        l2o = _rp(D)
        l2o.impl = "torch"
        trainer = MetaTrainer(l2o, task, MetaTrainConfig(unroll=5, epoch_len=10, scale_range=0.5, compile=compile_))
        stats.append([trainer.train_epoch(e, horizon=10) for e in range(2)])
    for eager, compiled in zip(*stats):
        assert compiled == {k: pytest.approx(v, rel=1e-12) if isinstance(v, float) else v for k, v in eager.items()}
    assert stats[0][0]["meta_loss"] != stats[0][1]["meta_loss"]


def test_a_family_of_optimizees_is_trained_on_in_turn_and_evaluated_on_the_task(tmp_path):
    from l2o.config import from_dict, to_dict
    from l2o.tasks import TaskSpec

    member = TaskSpec("quadratic", {"dim": 3})
    cfg = MetaTrainConfig(epoch_len=20, unroll=10, family=(member,))
    assert from_dict(MetaTrainConfig, to_dict(cfg)) == cfg  # as checkpoints and pipeline configs carry it
    mixed = MetaTrainer(_rp(), make_task("quadratic"), cfg)
    alone = MetaTrainer(_rp(), member.build(), MetaTrainConfig(epoch_len=20, unroll=10))
    plain = MetaTrainer(_rp(), make_task("quadratic"), MetaTrainConfig(epoch_len=20, unroll=10))
    assert mixed.train_epoch(0, 20) == plain.train_epoch(0, 20)  # epoch 0: the task itself
    alone.l2o.load_state_dict(mixed.l2o.state_dict())
    alone.meta_opt.load_state_dict(copy.deepcopy(mixed.meta_opt.state_dict()))  # Adam would share its tensors
    assert mixed.train_epoch(1, 20) == alone.train_epoch(1, 20)  # epoch 1: the member, same draws
    assert mixed.members[1][1].numel == 3 and mixed.layout.numel != 3
    plain.l2o.load_state_dict(mixed.l2o.state_dict())
    assert mixed.evaluate(20, seeds=2) == plain.evaluate(20, seeds=2)  # evaluation stays on the task
    with pytest.raises(ValueError, match="at most 16"):
        MetaTrainConfig(family=(member,) * 17)
    with pytest.raises(ValueError, match="unknown task"):
        from_dict(MetaTrainConfig, {"family": [{"name": "nope"}]})
