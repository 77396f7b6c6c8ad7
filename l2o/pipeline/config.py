"""The configuration of a whole run: one typed section per stage, every default commented by its help.

``PipelineConfig`` is what ``l2o pipeline`` (flags or ``--config FILE``), the Ray job
(``jobs/pipeline.py``, which adds only where the work runs) and the tests build; a run folder keeps it
as ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from l2o.config import option
from l2o.distill.engines import SearchConfig
from l2o.distill.record import RecordConfig
from l2o.distill.select import SelectConfig
from l2o.eval.tuning import DEFAULT_GRID
from l2o.learned.lstm import LSTMConfig
from l2o.meta.trainer import MetaTrainConfig
from l2o.tasks import TaskSpec

STAGES = ("meta_train", "record", "search", "fit", "select", "meta_tune", "evaluate")


@dataclass(frozen=True)
class RecordStage(RecordConfig):
    test_seeds: tuple[int, ...] = option(tuple(range(8, 16)),
                                         "rollouts recorded only to score the equations on runs the search never "
                                         "saw (R² on new rollouts); none of the searched seeds")

    def __post_init__(self):
        super().__post_init__()
        both = sorted(set(self.seeds) & set(self.test_seeds))
        if both:
            raise ValueError(f"test_seeds {both} are also searched on; give rollout seeds outside the recording's")


@dataclass(frozen=True)
class FitConfig:
    method: str = option("lbfgs", "lbfgs or adam: how every float constant of a candidate is fitted (MSE)")
    steps: int = option(200, "iterations of the fit")

    def __post_init__(self):
        if self.method not in ("lbfgs", "adam") or self.steps < 1:
            raise ValueError("fit.method must be lbfgs or adam, fit.steps >= 1")


@dataclass(frozen=True)
class MetaTuneConfig(MetaTrainConfig):
    """Stage 3: the selected rule's constants meta-learned by the ``MetaTrainer`` (these are its settings)."""

    enabled: bool = option(True, "meta-tune the selected rule")
    decay: float | None = option(1.0, "multiply the rule by exp(-k·t/1000), k learned from this value: a step-size "
                                      "schedule; unset: no factor")
    epochs: int = option(24, "optimizees sampled in all")
    epoch_len: int = option(200, "optimizee steps per epoch")
    meta_lr: float = option(3e-3, "Adam learning rate of the rule's constants (relative changes)")
    eval_every: int = option(3, "epochs between evaluations on eval_split (the best constants are kept)")
    eval_split: str = option("meta_valid", "split of those evaluations (the constants kept are the best there)")
    compare_seeds: int = option(4, "fresh meta_valid optimizees (seeds 2000, 2001, …, dealt round the task "
                                   "and meta_train.family) on which the tuned rule must beat the selected one "
                                   "(geometric mean of the final losses, at the last horizon) to replace it")

    def __post_init__(self):
        super().__post_init__()
        if self.compare_seeds < 1:
            raise ValueError("meta_tune.compare_seeds must be >= 1")
        if self.decay is not None and not 0 < self.decay < 1e3:
            raise ValueError(f"meta_tune.decay must be in (0, 1000), got {self.decay}")


@dataclass(frozen=True)
class EvaluateConfig:
    steps: int = option(1000, "steps per run")
    seeds: int = option(5, "runs per optimizer, seeds 0..seeds-1 of the held-out eval split")
    baselines: tuple[str, ...] = option(("adam:lr=1e-3", "sgd:lr=0.1"), "optimizer specs run beside the learned "
                                                                        "ones (as in l2o eval --optimizer)")
    tune: tuple[str, ...] = option(("adam",), "optimizers also run tuned over lr_grid")
    lr_grid: tuple[float, ...] = option(DEFAULT_GRID, "learning rates of the tuned baselines")

    def __post_init__(self):
        if self.steps < 1 or self.seeds < 1:
            raise ValueError("evaluate.steps and evaluate.seeds must be >= 1")


@dataclass(frozen=True)
class PipelineConfig:
    run_id: str | None = option(None, "the run folder <storage>/runs/<run_id>; an existing one continues "
                                      "(default: the UTC time)")
    storage: str | None = option(None, "storage root (default: $L2O_STORAGE, else ~/.l2o/storage)")
    stages: tuple[str, ...] = option(STAGES, "stages to run, in order (a stage whose artifact exists is skipped)")
    checkpoint: str | None = option(None, "a meta-trained checkpoint to distil instead of meta-training one")
    device: str = option("cpu", "torch device of optimizees and optimizers")
    dtype: str = option("float32", "float32 or float64")
    threads: int = option(0, "torch threads (and those of each search); 0: torch's choice")
    task: TaskSpec = option(factory=TaskSpec, help="the optimizee")
    l2o: LSTMConfig = option(factory=LSTMConfig, help="the learned optimizer")
    meta_train: MetaTrainConfig = option(factory=MetaTrainConfig, help="meta-training")
    record: RecordStage = option(factory=RecordStage, help="rollout recording")
    search: SearchConfig = option(factory=SearchConfig, help="symbolic regression")
    fit: FitConfig = option(factory=FitConfig, help="constant fitting")
    select: SelectConfig = option(factory=SelectConfig, help="selection")
    meta_tune: MetaTuneConfig = option(factory=MetaTuneConfig, help="meta-tuning")
    evaluate: EvaluateConfig = option(factory=EvaluateConfig, help="evaluation")

    def __post_init__(self):
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; expected among {STAGES}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.run_id is not None and not _safe_name(self.run_id):
            raise ValueError(f"run_id {self.run_id!r}: letters, digits, '.', '_' and '-' only")


def _safe_name(name: str) -> bool:
    return bool(name) and len(name) <= 128 and name not in (".", "..") and all(
        ch.isalnum() or ch in "._-" for ch in name)
