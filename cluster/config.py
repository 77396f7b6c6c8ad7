"""Job configurations: one dataclass per job, read from a JSON or YAML file, with a ``--smoke`` size.

Plain dataclasses of the ``l2o`` configs' fields, so that a file written by hand, a REST call and a
test all describe a job the same way. They become dicts only where Ray needs them (the train loop's
``train_loop_config``, Tune's ``param_space``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class MetaTrainJob:
    model: str = "rp"  # dm | rp | rp_si
    task: str = "mnist_mlp"  # l2o.tasks.TASK_NAMES
    task_options: dict[str, Any] = field(default_factory=dict)  # ImageTaskConfig / QuadraticConfig overrides
    l2o: dict[str, Any] = field(default_factory=dict)  # LSTMConfig overrides (hidden, features, …)
    meta: dict[str, Any] = field(default_factory=dict)  # MetaTrainConfig fields (epochs, curriculum, …)
    num_workers: int = 2  # Ray Train workers; each meta-trains on its own optimizees, gradients averaged
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    threads_per_worker: int = 1  # torch intra-op threads in each worker
    max_failures: int = 2  # worker-group restarts (from the last checkpoint) before the run fails
    checkpoint_every: int = 1  # epochs between checkpoints
    report_windows: bool = True  # set Ray gauges after every unroll window (dashboard Metrics page)
    # Ray Train's controller poll interval. A report waits for the poll only while the previous one is
    # uncollected (epochs shorter than this); each poll costs the workers time (0.2 s: ~7 % fewer windows/s).
    controller_poll_s: float = 2.0
    max_minutes: float | None = None  # wall-clock budget of the training loop
    name: str | None = None  # run name under <storage>/ray (default: <model>-<task>-<UTC time>)
    storage: str | None = None  # storage root: a path or a pyarrow URI (default: $L2O_STORAGE)
    seed: int = 0

    @classmethod
    def smoke(cls) -> "MetaTrainJob":
        return cls(model="rp", task="mnist_mlp", task_options={"batch_size": 32},
                   meta={"epochs": 3, "epoch_len": 40, "unroll": 20, "eval_every": 1, "eval_seeds": 1},
                   controller_poll_s=0.2)  # sub-second epochs


@dataclass
class GenerateJob:
    checkpoint: str = ""  # an l2o checkpoint file (path or URI)
    task: str | None = None  # default: the checkpoint's task
    task_options: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)  # l2o.distill.RecordConfig fields (steps, seeds, …)
    num_actors: int | None = None  # default: one per CPU (or GPU with use_gpu) of the cluster
    use_gpu: bool = False
    threads_per_actor: int = 1
    out: str | None = None  # dataset folder (default: <storage>/datasets/<name>)
    name: str | None = None
    storage: str | None = None

    @classmethod
    def smoke(cls) -> "GenerateJob":
        return cls(record={"steps": 60, "seeds": [0, 1, 2, 3], "coords_per_tensor": 4, "window": 10,
                           "windows_per_coord": 5})


@dataclass
class DistillJob:
    dataset: str = ""  # a dataset folder written by generate (Parquet + manifest.json)
    features: list[str] | None = None  # default: what the source model reads
    max_lag: int = 2
    columns: list[str] | None = None  # explicit input columns (instead of features × lags 0..max_lag)
    target: str = "raw"
    search: dict[str, Any] = field(default_factory=lambda: {
        "engine": ["operon"], "operators": ["add,sub,mul,div,tanh,exp,abs,square,sqrt,sinh",
                                            "add,sub,mul,div,tanh,sign,abs"],
        "max_complexity": [10, 20, 30], "population": [300, 1000], "generations": [50, 200],
        "parsimony": [0.0, 1e-3]})  # lists: Tune samples from them
    num_samples: int = 8  # trials
    max_concurrent: int = 2  # trials at once
    time_limit: float = 60.0  # seconds per trial's search
    cpus_per_trial: float = 1.0
    search_alg: str = "optuna"  # optuna | random
    out: str | None = None  # default: <dataset>/../distill-<UTC time>
    seed: int = 0
    storage: str | None = None

    @classmethod
    def smoke(cls) -> "DistillJob":
        return cls(search={"engine": ["operon"], "operators": ["add,sub,mul,div,tanh"], "max_complexity": [8, 12],
                           "population": [100], "generations": [20], "parsimony": [0.0, 1e-3]},
                   num_samples=2, max_concurrent=2, time_limit=5.0, max_lag=1)


@dataclass
class PipelineJob:
    run_id: str | None = None  # the folder <storage>/pipeline/<run_id>; stages with artifacts are skipped
    meta_train: MetaTrainJob = field(default_factory=MetaTrainJob)
    generate: GenerateJob = field(default_factory=GenerateJob)
    distill: DistillJob = field(default_factory=DistillJob)
    meta_tune: dict[str, Any] = field(default_factory=lambda: {"epochs": 20, "epoch_len": 200, "meta_lr": 3e-3,
                                                                "eval_every": 2, "eval_split": "meta_train"})
    evaluate: dict[str, Any] = field(default_factory=lambda: {"steps": 1000, "seeds": 5})
    storage: str | None = None

    @classmethod
    def smoke(cls) -> "PipelineJob":
        return cls(meta_train=MetaTrainJob.smoke(), generate=GenerateJob.smoke(), distill=DistillJob.smoke(),
                   meta_tune={"epochs": 2, "epoch_len": 40, "meta_lr": 3e-3, "eval_every": 1, "eval_seeds": 1,
                              "eval_split": "meta_train"},
                   evaluate={"steps": 100, "seeds": 2})


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """``cls`` from a dict, recursing into nested job dataclasses; unknown keys are an error."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown setting(s) {unknown}; expected among {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        default = names[key].default_factory() if names[key].default_factory is not dataclasses.MISSING else None
        kwargs[key] = from_dict(type(default), value) if dataclasses.is_dataclass(default) and isinstance(
            value, dict) else value
    return cls(**kwargs)


def build_job(cls: type[T], data: dict[str, Any], smoke: bool = False) -> T:
    """The job ``data`` describes, on top of the smoke size when ``smoke``; unknown settings are an error."""
    return from_dict(cls, _merge(dataclasses.asdict(cls.smoke()) if smoke else {}, data))


def load_job(cls: type[T], path: str | os.PathLike | None, smoke: bool = False) -> T:
    """The job in ``path`` (JSON or YAML), on top of the smoke size when ``smoke``; the defaults without a file."""
    data: dict[str, Any] = {}
    if path:
        text = Path(path).read_text()
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a job config must be a mapping")
    return build_job(cls, data, smoke)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def storage_uri(explicit: str | None = None) -> str:
    """The storage root: ``explicit``, else ``$L2O_STORAGE``, else ``~/.l2o/storage`` (absolute)."""
    root = explicit or os.environ.get("L2O_STORAGE") or str(Path.home() / ".l2o" / "storage")
    return root if "://" in root else str(Path(root).expanduser().resolve())
