"""Meta-training: the learned-optimizer interface, flat parameters, and the truncated-BPTT trainer."""

from l2o.meta.interface import LearnedOptimizer
from l2o.meta.trainer import BadWindowsError, MetaTrainConfig, MetaTrainer, Sync, TrainState, rollout_l2o

__all__ = ["BadWindowsError", "LearnedOptimizer", "MetaTrainConfig", "MetaTrainer", "Sync", "TrainState", "rollout_l2o"]
