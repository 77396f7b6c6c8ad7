"""The method as stages over one run folder, and the placements that run them (see ``stages``)."""

from l2o.pipeline.config import (STAGES, EvaluateConfig, FitConfig, MetaTuneConfig, PipelineConfig,
                                 RecordStage)
from l2o.pipeline.placement import Placement, RolloutJob
from l2o.pipeline.run import Run
from l2o.pipeline.stages import run_pipeline

__all__ = ["STAGES", "EvaluateConfig", "FitConfig", "MetaTuneConfig", "PipelineConfig", "Placement", "RecordStage",
           "RolloutJob", "Run", "run_pipeline"]
