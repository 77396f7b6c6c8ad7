"""Learned optimizers: per-coordinate features, the DM / RP / RP_si LSTMs, checkpoints."""

from l2o.learned.checkpoint import l2o_from_checkpoint, load_checkpoint, save_checkpoint
from l2o.learned.features import FEATURES, FeatureExtractor, log_and_sign
from l2o.learned.lstm import MODELS, CoordinateLSTM, LSTMConfig, lstm_config

__all__ = ["FEATURES", "MODELS", "CoordinateLSTM", "FeatureExtractor", "LSTMConfig", "l2o_from_checkpoint",
           "load_checkpoint", "log_and_sign", "lstm_config", "save_checkpoint"]
