"""Where the stages' work runs. ``Placement`` runs everything in this process; the Ray layer
(``cluster.placement``) overrides each method to place the same work on Ray Train, actors, Tune and tasks.

Each method takes typed configs and plain data, and calls one ``l2o`` function per unit of work
(``train_l2o``, ``record_seeds``, ``search_point``, ``rollout_job``, ``tune_rule``), so that where the work
runs never changes what it computes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from l2o.distill.engines import make_engine
from l2o.distill.record import RecordConfig, record, save_dataset
from l2o.eval.optimizers import OptimizerSpec
from l2o.eval.rollout import Curves, rollout
from l2o.expr import Equation
from l2o.learned import CoordinateLSTM, LSTMConfig, l2o_from_checkpoint
from l2o.meta import MetaTrainConfig, MetaTrainer
from l2o.meta.checkpoint import load_checkpoint, restore_trainer, save_checkpoint
from l2o.tasks import TaskSpec

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class RolloutJob:
    """One optimizer on ``seeds`` optimizees of a task's ``split``, for ``steps`` steps."""

    task: TaskSpec
    spec: OptimizerSpec
    label: str
    steps: int
    seeds: tuple[int, ...]
    split: str = "eval"


# -- the units of work --------------------------------------------------------------------------------
def train_l2o(l2o_config: LSTMConfig, task: TaskSpec, meta: MetaTrainConfig, checkpoint: Path, device: str = "cpu",
              dtype: str = "float32", progress: bool = False, checkpoint_every: int | None = None,
              on_epoch: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Meta-train in this process, writing ``checkpoint`` as it goes; resumes from it when it exists."""
    built = task.build(device, DTYPES[dtype])
    torch.manual_seed(meta.seed)  # the L2O's initial weights: the seed is the root of every draw
    l2o = CoordinateLSTM(l2o_config).to(device=built.device, dtype=built.dtype)
    trainer = MetaTrainer(l2o, built, meta)
    spec = {"name": task.name, "options": task.options}
    if checkpoint.is_file():
        restore_trainer(trainer, load_checkpoint(checkpoint))
    every = checkpoint_every or meta.eval_every
    bar = _bar(meta.epochs, trainer.state.epoch, f"meta-train {l2o.config.model}", progress)

    def callback(record: dict) -> None:
        bar.update(1)
        bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k in ("meta_loss", "eval_loss")
                         and isinstance(v, float)})
        if trainer.state.epoch % every == 0:
            save_checkpoint(checkpoint, trainer, spec)
        if on_epoch:
            on_epoch(record)

    t0 = time.perf_counter()
    trainer.fit(callback)
    bar.close()
    save_checkpoint(checkpoint, trainer, spec)
    return {"checkpoint": str(checkpoint), "epochs": trainer.state.epoch, "best_eval": trainer.state.best_eval,
            "bad_windows": trainer.state.bad_windows, "seconds": round(time.perf_counter() - t0, 1)}


def record_seeds(checkpoint: str, task: TaskSpec, config: RecordConfig, device: str = "cpu",
                 dtype: str = "float32"):
    """The dataset of ``config.seeds``' rollouts of the checkpoint's learned optimizer."""
    l2o = l2o_from_checkpoint(checkpoint)
    built = task.build(device, DTYPES[dtype])
    return record(l2o.to(device=built.device, dtype=built.dtype), built, config, source=str(checkpoint))


def search_point(X: np.ndarray, y: np.ndarray, columns: Sequence[str], engine: str, point: dict[str, Any]
                 ) -> tuple[list[Equation], float]:
    """One search: the engine's Pareto front over (X, y) and the seconds it took."""
    est = make_engine(engine, **point).fit(X, y, columns)
    for e in est.pareto_front_:
        e.meta["search"] = {k: list(v) if isinstance(v, tuple) else v for k, v in point.items() if k != "threads"}
    return est.pareto_front_, est.seconds_


def rollout_job(job: RolloutJob, device: str = "cpu", dtype: str = "float32") -> Curves:
    return rollout(job.task.build(device, DTYPES[dtype]), job.spec, job.steps, list(job.seeds), split=job.split,
                   label=job.label, progress=False)


def tune_rule(source: Equation, task: TaskSpec, config: MetaTrainConfig, device: str = "cpu",
              dtype: str = "float32") -> dict[str, Any]:
    """Stage 3 on one rule: the tuned equation and its evaluation before and after."""
    from l2o.optim.tune import meta_tune

    tuned, state = meta_tune(source, task.build(device, DTYPES[dtype]), config)
    return {"tuned": tuned.to_dict(), "eval_loss_before": tuned.meta["eval_loss_before"],
            "eval_loss_after": tuned.meta["eval_loss_after"], "epochs": state.epoch, "history": state.history}


def _bar(total: int, initial: int, desc: str, on: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="epoch", disable=not on, leave=False)


class Placement:
    """Every unit of work in this process, one after another."""

    name = "in-process"

    def __init__(self, progress: bool = False):
        self.progress = progress

    def meta_train(self, l2o_config: LSTMConfig, task: TaskSpec, meta: MetaTrainConfig, checkpoint: Path,
                   device: str, dtype: str) -> dict[str, Any]:
        return train_l2o(l2o_config, task, meta, checkpoint, device, dtype, progress=self.progress)

    def record(self, checkpoint: str, task: TaskSpec, config: RecordConfig, out: Path, device: str,
               dtype: str) -> dict[str, Any]:
        dataset = record_seeds(checkpoint, task, config, device, dtype)
        save_dataset(dataset, out)
        return dataset.manifest

    def search(self, X: np.ndarray, y: np.ndarray, columns: Sequence[str], engine: str,
               points: Sequence[dict[str, Any]]) -> list[tuple[list[Equation], float]]:
        return [search_point(X, y, columns, engine, p) for p in points]

    def rollouts(self, jobs: Sequence[RolloutJob], device: str, dtype: str) -> list[Curves]:
        return [rollout_job(j, device, dtype) for j in jobs]

    def meta_tune(self, source: Equation, task: TaskSpec, config: MetaTrainConfig, device: str, dtype: str
                  ) -> dict[str, Any]:
        return tune_rule(source, task, config, device, dtype)


def meta_config(config: MetaTrainConfig) -> MetaTrainConfig:
    """The plain ``MetaTrainConfig`` fields of a config that extends it (what checkpoints store)."""
    names = {f.name for f in dataclasses.fields(MetaTrainConfig)}
    return MetaTrainConfig(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name in names})
