"""Optimizers that plug into ``torch.optim``: learned LSTMs (and, later, symbolic rules)."""

from l2o.optim.lstm_optimizer import LSTMOptimizer

__all__ = ["LSTMOptimizer"]
