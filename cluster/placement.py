"""The pipeline's work placed on Ray: meta-training on Ray Train, recording on actors, the searches as
Tune trials, rollouts (selection, evaluation) and meta-tuning as tasks.

``RayPlacement`` overrides each method of ``l2o.pipeline.placement.Placement`` and calls the same units of
work, so a stage computes on Ray what it computes in one process.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cluster.config import GenerateJob, GeneratePlacement, MetaTrainJob, SearchPlacement, TrainPlacement
from l2o.distill.record import RecordConfig
from l2o.eval.rollout import Curves
from l2o.expr import Equation
from l2o.learned.lstm import LSTMConfig
from l2o.meta.trainer import MetaTrainConfig
from l2o.pipeline.placement import Placement, RolloutJob, rollout_job, tune_rule
from l2o.tasks import TaskSpec


def _one_thread(fn, *args):
    """``fn`` in a Ray task on one torch thread (a task holds one CPU)."""
    import torch

    torch.set_num_threads(1)
    return fn(*args)


class RayPlacement(Placement):
    name = "ray"

    def __init__(self, train: TrainPlacement = TrainPlacement(), actors: GeneratePlacement = GeneratePlacement(),
                 tune: SearchPlacement = SearchPlacement(), progress: bool = False):
        super().__init__(progress)
        self.train, self.actors, self.tune = train, actors, tune

    def _remote(self, device: str):
        import ray

        return ray.remote(num_cpus=1, num_gpus=1 if device.startswith("cuda") else 0)(_one_thread)

    def meta_train(self, l2o_config: LSTMConfig, task: TaskSpec, meta: MetaTrainConfig, checkpoint: Path,
                   device: str, dtype: str) -> dict[str, Any]:
        from cluster.train import CHECKPOINT_FILE, meta_train

        job = MetaTrainJob(l2o=l2o_config, task=task, meta=meta, train=self.train, name="ray_train",
                           storage=str(checkpoint.parent))
        result = meta_train(job)
        if result.error:
            raise RuntimeError(f"meta-training failed on Ray Train: {result.error}")
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(result.checkpoint.path) / CHECKPOINT_FILE, checkpoint)
        metrics = result.metrics or {}
        return {"epochs": metrics.get("epoch", 0) + 1, "best_eval": metrics.get("best_eval"),
                "workers": self.train.num_workers, "windows_per_s": metrics.get("windows_per_s")}

    def record(self, checkpoint: str, task: TaskSpec, config: RecordConfig, out: Path, device: str,
               dtype: str) -> dict[str, Any]:
        from cluster.generate import generate

        actors = self.actors if not device.startswith("cuda") else GeneratePlacement(
            self.actors.num_actors, True, self.actors.threads_per_actor)
        return generate(GenerateJob(checkpoint=checkpoint, task=task, record=config, actors=actors, out=str(out)),
                        progress=self.progress)

    def search(self, X: np.ndarray, y: np.ndarray, columns: Sequence[str], engine: str,
               points: Sequence[dict[str, Any]]) -> list[tuple[list[Equation], float]]:
        import tempfile

        from cluster.search import search

        with tempfile.TemporaryDirectory(prefix="l2o-tune-") as tmp:
            return search(X, y, columns, engine, points, self.tune, tmp)

    def rollouts(self, jobs: Sequence[RolloutJob], device: str, dtype: str) -> list[Curves]:
        import ray

        remote = self._remote(device)
        return ray.get([remote.remote(rollout_job, j, device, dtype) for j in jobs])

    def meta_tune(self, source: Equation, task: TaskSpec, config: MetaTrainConfig, device: str, dtype: str
                  ) -> dict[str, Any]:
        import ray

        return ray.get(self._remote(device).remote(tune_rule, source, task, config, device, dtype))
