"""Job configurations: one typed dataclass per job, nesting the ``l2o`` configs, read from JSON or YAML.

A job is the ``l2o`` configs of its work plus where that work runs (workers, actors, trials). Files,
REST bodies and tests describe a job the same way; ``l2o.config.from_dict`` checks every value where it
enters (unknown settings are an error) and the job becomes a dict only where Ray needs one (a train
loop's config). ``--smoke`` starts from each job's smallest real size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

from l2o.config import from_dict, merge, option, read_config_file, to_dict
from l2o.distill.engines import SearchConfig
from l2o.distill.record import RecordConfig
from l2o.distill.select import SelectConfig
from l2o.learned.lstm import LSTMConfig
from l2o.meta.trainer import MetaTrainConfig
from l2o.pipeline.config import FitConfig, PipelineConfig
from l2o.storage import storage_uri
from l2o.tasks import TaskSpec

T = TypeVar("T")


@dataclass(frozen=True)
class TrainPlacement:
    num_workers: int = option(2, "Ray Train workers; each meta-trains on its own optimizees, gradients averaged")
    use_gpu: bool = option(False, "one GPU per worker")
    cpus_per_worker: float = option(1.0, "CPUs reserved per worker")
    threads_per_worker: int = option(1, "torch intra-op threads in each worker")
    max_failures: int = option(2, "worker-group restarts (from the last checkpoint) before the run fails")
    checkpoint_every: int = option(1, "epochs between checkpoints")
    report_windows: bool = option(True, "set Ray gauges after every unroll window (dashboard Metrics page)")
    # A report waits for the poll only while the previous one is uncollected (epochs shorter than this);
    # each poll costs the workers time (0.2 s: ~7 % fewer windows/s).
    controller_poll_s: float = option(2.0, "Ray Train's controller poll interval, seconds")

    def __post_init__(self):
        if self.num_workers < 1 or self.threads_per_worker < 1 or self.checkpoint_every < 1:
            raise ValueError("num_workers, threads_per_worker and checkpoint_every must be >= 1")


@dataclass(frozen=True)
class GeneratePlacement:
    num_actors: int | None = option(None, "rollout actors; unset: one per CPU (or GPU with use_gpu) of the cluster")
    use_gpu: bool = option(False, "one GPU per actor")
    threads_per_actor: int = option(1, "torch threads in each actor")


@dataclass(frozen=True)
class SearchPlacement:
    max_concurrent: int = option(2, "Tune trials (searches) at once")
    cpus_per_trial: float = option(1.0, "CPUs reserved per trial; the search uses that many threads")


@dataclass(frozen=True)
class MetaTrainJob:
    l2o: LSTMConfig = option(factory=LSTMConfig, help="the learned optimizer")
    task: TaskSpec = option(factory=TaskSpec, help="the optimizee")
    meta: MetaTrainConfig = option(factory=MetaTrainConfig, help="meta-training")
    train: TrainPlacement = option(factory=TrainPlacement, help="the Ray Train workers")
    name: str | None = option(None, "run name under <storage>/ray (default: <model>-<task>-<UTC time>)")
    storage: str | None = option(None, "storage root: a path or a pyarrow URI (default: $L2O_STORAGE)")

    @classmethod
    def smoke(cls) -> dict[str, Any]:
        return {"task": {"name": "mnist_mlp", "options": {"batch_size": 32}},
                "meta": {"epochs": 3, "epoch_len": 40, "unroll": 20, "eval_every": 1, "eval_seeds": 1},
                "train": {"controller_poll_s": 0.2}}  # sub-second epochs


@dataclass(frozen=True)
class GenerateJob:
    checkpoint: str = option("", "an l2o checkpoint file")
    task: TaskSpec | None = option(None, "the optimizee (default: the checkpoint's task)")
    record: RecordConfig = option(factory=RecordConfig, help="what to record")
    actors: GeneratePlacement = option(factory=GeneratePlacement, help="the rollout actors")
    out: str | None = option(None, "dataset folder or URI (default: <storage>/datasets/<name>)")
    name: str | None = option(None, "dataset name (default: dataset-<UTC time>)")
    storage: str | None = option(None, "storage root (default: $L2O_STORAGE)")

    @classmethod
    def smoke(cls) -> dict[str, Any]:
        return {"record": {"steps": 60, "seeds": [0, 1, 2, 3], "coords_per_tensor": 4, "window": 10,
                           "windows_per_coord": 5}}


@dataclass(frozen=True)
class DistillJob:
    dataset: str = option("", "a dataset folder (Parquet + manifest.json), e.g. one generate wrote")
    test_dataset: str | None = option(None, "rollouts to score the candidates on (R² on new rollouts)")
    task: TaskSpec = option(factory=TaskSpec, help="the optimizee selection rolls the candidates out on")
    search: SearchConfig = option(factory=SearchConfig, help="the searches (every combination: one Tune trial)")
    fit: FitConfig = option(factory=FitConfig, help="constant fitting")
    select: SelectConfig = option(factory=lambda: SelectConfig(by="r2"),
                                  help="selection (rollout needs the dataset's checkpoint and task)")
    tune: SearchPlacement = option(factory=SearchPlacement, help="the Tune trials")
    out: str | None = option(None, "run folder (default: <dataset>/../distill-<UTC time>)")
    storage: str | None = option(None, "storage root (default: $L2O_STORAGE)")

    @classmethod
    def smoke(cls) -> dict[str, Any]:
        return {"search": {"operators": [["add", "sub", "mul", "div", "tanh"]], "max_complexity": [8, 12],
                           "population": [100], "generations": [20], "max_lag": 1}}


@dataclass(frozen=True)
class PipelineJob:
    pipeline: PipelineConfig = option(factory=PipelineConfig, help="the method: every stage's settings")
    train: TrainPlacement = option(factory=TrainPlacement, help="meta-training on Ray Train")
    actors: GeneratePlacement = option(factory=GeneratePlacement, help="recording on Ray actors")
    tune: SearchPlacement = option(factory=SearchPlacement, help="the searches as Tune trials")

    @classmethod
    def smoke(cls) -> dict[str, Any]:
        train = MetaTrainJob.smoke()  # the stage jobs' smoke sizes, with what the whole method adds
        meta = {k: v for k, v in train["meta"].items() if k != "unroll"}
        record = {k: v for k, v in GenerateJob.smoke()["record"].items() if k != "windows_per_coord"}
        return {"pipeline": {
            "task": train["task"], "meta_train": meta, "record": {**record, "test_seeds": [4]},
            "search": DistillJob.smoke()["search"], "select": {"seeds": 1, "max_candidates": 6},
            "meta_tune": {**meta, "epochs": 2}, "evaluate": {"steps": 100, "seeds": 2, "lr_grid": [1e-3, 1e-2]}},
            "train": train["train"]}


JOBS = {"meta_train": MetaTrainJob, "generate": GenerateJob, "distill": DistillJob, "pipeline": PipelineJob}


def build_job(cls: type[T], data: dict[str, Any], smoke: bool = False) -> T:
    """The job ``data`` describes, laid over the smoke size when ``smoke``; unknown settings are an error."""
    return from_dict(cls, merge(cls.smoke() if smoke else {}, data))


def load_job(cls: type[T], path: str | os.PathLike | None, smoke: bool = False) -> T:
    """The job in ``path`` (JSON or YAML) over the smoke size when ``smoke``; the defaults without a file."""
    return build_job(cls, read_config_file(str(path) if path else None), smoke)


__all__ = ["JOBS", "DistillJob", "GenerateJob", "MetaTrainJob", "PipelineJob", "build_job", "load_job",
           "storage_uri", "to_dict"]
