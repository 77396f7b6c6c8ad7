"""Learned optimizers: the DM / RP / RP_si coordinatewise LSTMs and their fused CPU kernels.

Importing this package registers the LSTMs' kind ("lstm"), so that checkpoints can rebuild them.
"""

from l2o.learned.lstm import MODELS, CoordinateLSTM, LSTMConfig, log_and_sign, lstm_config
from l2o.meta.checkpoint import l2o_from_checkpoint, load_checkpoint, save_checkpoint

__all__ = ["MODELS", "CoordinateLSTM", "LSTMConfig", "l2o_from_checkpoint", "load_checkpoint", "log_and_sign",
           "lstm_config", "save_checkpoint"]
