"""Meta-training of a learned optimizer by truncated back-propagation through time.

Each epoch samples a fresh optimizee (``task.init(seed)`` and the ``meta_train`` minibatch stream of the
same seed) and runs ``epoch_len`` steps θ ← θ + u_t, u_t = L2O(g_t). Every ``unroll`` steps the window's
meta-loss Σ_t L_t(θ_t) + L(θ_T) (the loss after the last update) is back-propagated into the L2O's
weights, then the hidden state is detached. Optimizee gradients are detached (first-order), so
dθ_s/dθ_t = I and the meta-gradient reaching update u_t is exactly Σ_{s>t} g_s — the gradients the
unroll already computed. The trainer therefore back-propagates only through the L2O, with those sums as
output gradients, and never through the optimizee a second time. L(θ_T) on the next minibatch is the
first loss of the next window, so it is computed once.

Task augmentation: ``family`` names more optimizees (other widths, depths, activations, inits); the
epochs go round the task and its family in turn, and evaluation (which keeps the best weights) stays on
the task.

Options: random parameter scaling (Lv et al. 2017: the L2O optimises φ with θ = c ⊙ φ,
c = exp(U(−r, r)) per coordinate), a curriculum over horizons, and imitation of an Adam teacher with
probability ``imitation_prob`` per window (the window's objective becomes the mean squared distance of
the L2O's steps to Adam's on the same gradients). A window whose losses or steps are not finite is
skipped and counted; past ``max_bad_windows`` the run stops with ``BadWindowsError``.

Everything random is drawn from generators seeded by (seed, epoch, window), so a resumed run repeats
exactly what an uninterrupted one would have done.

Data-parallel meta-training (several processes, each on its own optimizees) goes through ``Sync``: the
trainer asks it to average the meta-gradient after each backward pass, to agree on whether a window
was finite and whether to go on, and to average evaluation losses, so that every process takes the same
steps and the same decisions. The default ``Sync`` does nothing; the Ray layer supplies one over
``torch.distributed``. ``on_window`` (if set) receives each window's metrics as they happen.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from l2o import machine
from l2o.config import option
from l2o.meta.flat import FlatParams, loss_and_grad, loss_and_grad_functional
from l2o.meta.interface import LearnedOptimizer
from l2o.tasks import Task, TaskSpec

log = logging.getLogger(__name__)


class BadWindowsError(RuntimeError):
    """Too many unroll windows produced NaN or infinite losses or steps."""


MAX_FAMILY = 16


@dataclass(frozen=True)
class MetaTrainConfig:
    epochs: int = option(100, "optimizees sampled in all (the run may stop earlier on patience)")
    epoch_len: int = option(200, "optimizee steps per epoch without a curriculum")
    unroll: int = option(20, "steps per truncated-BPTT window")
    meta_lr: float = option(1e-3, "Adam learning rate of the learned optimizer's weights")
    grad_clip: float = option(1.0, "largest global norm of the meta-gradient; 0 disables clipping")
    scale_range: float = option(0.0, "random parameter scaling c = exp(U(-r, r)); 0 disables")
    curriculum: tuple[int, ...] = option((), "horizons, e.g. 100,200,500,1000; empty: epoch_len only")
    patience: int = option(5, "evaluations without improvement before advancing the curriculum (or stopping)")
    eval_every: int = option(5, "epochs between evaluations (on eval_split)")
    eval_seeds: int = option(3, "optimizees per evaluation")
    eval_split: str = option("meta_valid", "data split of the evaluations that keep the best weights")
    imitation_prob: float = option(0.0, "probability that a window imitates an Adam teacher instead")
    teacher_lr: float = option(1e-3, "the Adam teacher's learning rate")
    max_bad_windows: int = option(20, "NaN/inf windows tolerated before the run stops")
    seed: int = option(0, "root of every random draw")
    compile: bool = option(False, "torch.compile the step and the optimizee's gradient (pays off on GPUs)")
    max_minutes: float | None = option(None, "wall-clock budget, checked after each epoch; unset: the epochs "
                                             "alone bound the run (the same result on a busy machine)")
    keep_memory_mib: int = option(2048, "freed memory the process keeps for the next window instead of "
                                         "returning it to the OS (CPU, glibc; see l2o.machine."
                                         "keep_freed_memory); 0 leaves the allocator alone")
    family: tuple[TaskSpec, ...] = option((), "more optimizees, trained on in turn with the task (task "
                                              "augmentation): epoch e samples member e mod (1 + len(family)), "
                                              "the task first; evaluation stays on the task", flag=False)

    def __post_init__(self):
        if self.unroll < 1 or self.epochs < 1 or self.epoch_len < 1:
            raise ValueError("epochs, epoch_len and unroll must be >= 1")
        if self.eval_every < 1 or self.eval_seeds < 1 or self.patience < 1:
            raise ValueError("eval_every, eval_seeds and patience must be >= 1")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError("max_minutes must be positive (or unset)")
        if self.eval_split not in ("meta_train", "meta_valid"):
            raise ValueError(f"eval_split must be meta_train or meta_valid, got {self.eval_split!r}")
        if any(h < self.unroll for h in self.curriculum):
            raise ValueError(f"every curriculum horizon must be >= unroll ({self.unroll})")
        if not 0.0 <= self.imitation_prob <= 1.0:
            raise ValueError(f"imitation_prob must be in [0, 1], got {self.imitation_prob}")
        if self.keep_memory_mib < 0:
            raise ValueError(f"keep_memory_mib must be >= 0, got {self.keep_memory_mib}")
        if len(self.family) > MAX_FAMILY:
            raise ValueError(f"family holds at most {MAX_FAMILY} optimizees, got {len(self.family)}")

    @property
    def horizons(self) -> tuple[int, ...]:
        return tuple(self.curriculum) or (self.epoch_len,)


@dataclass
class TrainState:
    """Where a run stands; everything a checkpoint needs besides weights and optimizer state."""

    epoch: int = 0  # epochs finished
    level: int = 0  # index into config.horizons
    best_eval: float = math.inf  # best evaluation loss at the current level
    wait: int = 0  # evaluations since the last improvement
    bad_windows: int = 0
    done: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


class Sync:
    """Agreement between data-parallel meta-training processes; this one is a single process."""

    def gradients(self, params: list[torch.Tensor], ok: bool = True) -> bool:
        """Average the parameters' ``.grad`` across processes (in place); True only if every process
        says ``ok`` (one exchange for both, so that a window has a single point where processes wait)."""
        return ok

    def all(self, flag: bool) -> bool:
        """True only if every process says True."""
        return flag

    def mean(self, value: float) -> float:
        return value


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1)[0])


class MetaTrainer:
    """Meta-trains ``l2o`` on ``task``; knows the L2O only through ``LearnedOptimizer``."""

    def __init__(self, l2o: LearnedOptimizer, task: Task, config: MetaTrainConfig = MetaTrainConfig(),
                 sync: Sync | None = None):
        self.l2o, self.task, self.config = l2o, task, config
        self.sync = sync or Sync()
        self.on_window: Callable[[dict[str, Any]], None] | None = None
        self.meta_opt = torch.optim.Adam(l2o.parameters(), lr=config.meta_lr)
        self.state = TrainState()
        self.best_weights = copy.deepcopy(l2o.state_dict())
        self.layout = FlatParams(task.init(0))
        others = [spec.build(task.device, task.dtype) for spec in config.family]
        self.members = [(task, self.layout)] + [(t, FlatParams(t.init(0))) for t in others]
        self._step, self._grad = l2o.step, loss_and_grad
        if task.device.type == "cpu":
            machine.keep_freed_memory(config.keep_memory_mib * 2**20)
        if config.compile:
            self._step, self._grad = torch.compile(l2o.step), torch.compile(loss_and_grad_functional)

    # -- one epoch --------------------------------------------------------------------------------
    def train_epoch(self, epoch: int, horizon: int) -> dict[str, float]:
        cfg = self.config
        task, layout = self.members[epoch % len(self.members)]
        seed = _seed(cfg.seed, epoch)
        gen = torch.Generator().manual_seed(seed)
        theta = layout.flatten(task.init(seed)).to(task.device, task.dtype)
        scale = None
        if cfg.scale_range > 0:
            scale = torch.empty(layout.numel, dtype=torch.float64).uniform_(-cfg.scale_range, cfg.scale_range,
                                                                             generator=gen).exp()
            scale = scale.to(theta)
        phi = theta / scale if scale is not None else theta
        batches = task.batches("meta_train", seed)
        state = self.l2o.init_state(phi)
        teacher = (torch.zeros_like(phi), torch.zeros_like(phi), 0)
        loss, grad = self._loss_grad(task, layout, phi, scale, next(batches))
        window_losses, imitation_losses, skipped = [], [], 0
        for window in range(horizon // cfg.unroll):
            imitate = cfg.imitation_prob > 0 and torch.rand((), generator=gen).item() < cfg.imitation_prob
            steps, grads, targets, losses = [], [], [], [loss]
            for _ in range(cfg.unroll):
                if cfg.imitation_prob > 0:  # the teacher follows every step, so its moments are current
                    teacher, target = self._teacher_step(grad, teacher)
                    targets.append(target)
                update, state = self._step(grad, state)
                phi = phi + update.detach()
                loss, grad = self._loss_grad(task, layout, phi, scale, next(batches))
                steps.append(update)
                grads.append(grad)
                losses.append(loss)
            losses_t = torch.stack(losses)
            finite = bool(torch.isfinite(losses_t).all()) and all(bool(torch.isfinite(u).all()) for u in steps)
            if imitate:
                n, s = float(phi.numel()), getattr(self.l2o.config, "output_scale", 1.0) or 1.0
                out_grads = [2.0 * (u.detach() - a) / (n * s * s) for u, a in zip(steps, targets)]
                meta_loss = sum(float(((u.detach() - a) ** 2).mean()) for u, a in zip(steps, targets)) / (s * s)
            else:  # d(Σ L)/du_t = Σ_{s>t} g_s (first-order), as a reversed cumulative sum
                out_grads = list(torch.stack(grads).flip(0).cumsum(0).flip(0).unbind(0))
                meta_loss = float(losses_t.sum())
            self.meta_opt.zero_grad(set_to_none=True)
            torch.autograd.backward(steps, out_grads)  # also when not finite: the processes agree below
            if not self.sync.gradients([p for p in self.l2o.parameters() if p.grad is not None], finite):
                self.meta_opt.zero_grad(set_to_none=True)
                self._bad_window(epoch, window)
                skipped += 1
                break  # the optimizee has left the rails: the rest of this epoch teaches nothing
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.l2o.parameters(), cfg.grad_clip)
            self.meta_opt.step()
            state = self.l2o.detach_state(state)
            if imitate:
                imitation_losses.append(meta_loss / cfg.unroll)
            else:
                window_losses.append(meta_loss / (cfg.unroll + 1))
            if self.on_window:
                self.on_window({"epoch": epoch, "window": window, "horizon": horizon, "imitation": imitate,
                                "window_loss": (imitation_losses if imitate else window_losses)[-1]})
        # None where the epoch had no window of that kind (all imitation, or stopped by a bad window).
        return {"epoch": epoch, "horizon": horizon,
                "meta_loss": float(np.mean(window_losses)) if window_losses else None,
                "imitation_loss": float(np.mean(imitation_losses)) if imitation_losses else None,
                "final_loss": float(loss), "bad_windows": skipped}

    def _loss_grad(self, task, layout, phi, scale, batch):
        theta = phi * scale if scale is not None else phi
        loss, grad = self._grad(task, layout, theta, batch)
        return loss, (grad * scale if scale is not None else grad)

    def _teacher_step(self, g, teacher, b1=0.9, b2=0.999, eps=1e-8):
        m, v, t = teacher
        t += 1
        m = torch.lerp(g, m, b1)
        v = torch.lerp(g * g, v, b2)
        step = -self.config.teacher_lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
        return (m, v, t), step

    def _bad_window(self, epoch: int, window: int) -> None:
        self.state.bad_windows += 1
        log.warning("epoch %d window %d: non-finite loss or step; window skipped (%d so far)",
                    epoch, window, self.state.bad_windows)
        if self.state.bad_windows > self.config.max_bad_windows:
            raise BadWindowsError(
                f"{self.state.bad_windows} unroll windows produced NaN/inf (max_bad_windows="
                f"{self.config.max_bad_windows}); lower meta_lr, enable grad_clip, or shorten the horizon")

    # -- evaluation -------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, steps: int, seeds: int | None = None, split: str | None = None) -> float:
        """Mean over seeds of the loss over the last 10 steps of ``steps``-step runs (inf if any diverged)."""
        finals = []
        for k in range(seeds or self.config.eval_seeds):
            losses = rollout_l2o(self.l2o, self.task, steps, seed=_seed(self.config.seed, 10**9 + k),
                                 split=split or self.config.eval_split)
            finals.append(float(np.mean(losses[-10:])))
        return float(np.mean(finals)) if all(map(math.isfinite, finals)) else math.inf

    # -- the run ----------------------------------------------------------------------------------
    def fit(self, callback: Callable[[dict[str, Any]], None] | None = None,
            max_seconds: float | None = None) -> TrainState:
        """Train until ``epochs``, the curriculum's last level runs out of patience, or ``max_seconds`` of
        wall-clock time (default: the config's ``max_minutes``) have passed, checked after each epoch;
        keep the best weights."""
        cfg, st = self.config, self.state
        horizons = cfg.horizons
        if max_seconds is None and cfg.max_minutes:
            max_seconds = cfg.max_minutes * 60
        deadline = time.monotonic() + max_seconds if max_seconds else math.inf
        while not st.done and st.epoch < cfg.epochs and self.sync.all(time.monotonic() < deadline):
            record = self.train_epoch(st.epoch, horizons[st.level])
            st.epoch += 1
            if st.epoch % cfg.eval_every == 0 or st.epoch == cfg.epochs:
                record["eval_loss"] = self.sync.mean(self.evaluate(horizons[st.level]))
                if record["eval_loss"] < st.best_eval:
                    st.best_eval, st.wait = record["eval_loss"], 0
                    self.best_weights = copy.deepcopy(self.l2o.state_dict())
                else:
                    st.wait += 1
                if st.wait >= cfg.patience:
                    self.l2o.load_state_dict(self.best_weights)
                    if st.level + 1 < len(horizons):
                        st.level, st.best_eval, st.wait = st.level + 1, math.inf, 0
                        record["advanced_to"] = horizons[st.level]
                    else:
                        st.done = True
            st.history.append(record)
            if callback:
                callback(record)
        if st.best_eval < math.inf:
            self.l2o.load_state_dict(self.best_weights)
        return st


@torch.no_grad()
def rollout_l2o(l2o: LearnedOptimizer, task: Task, steps: int, seed: int, split: str = "eval") -> list[float]:
    """Train one fresh optimizee with ``l2o`` for ``steps`` steps; its loss at each step (no meta-gradient)."""
    params = task.init(seed)
    layout = FlatParams(params)
    theta = layout.flatten(params)
    batches = task.batches(split, seed)
    state = l2o.init_state(theta)
    losses = []
    for _ in range(steps):
        loss, grad = loss_and_grad(task, layout, theta, next(batches))
        losses.append(float(loss))
        if not math.isfinite(losses[-1]):
            return losses + [math.nan] * (steps - len(losses))
        update, state = l2o.step(grad, state)
        theta = theta + update
    return losses
