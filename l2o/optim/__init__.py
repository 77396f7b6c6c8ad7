"""Optimizers that plug into ``torch.optim``: learned LSTMs and symbolic update rules."""

from l2o.optim.lstm_optimizer import LSTMOptimizer
from l2o.optim.symbolic import SymbolicOptimizer, SymbolicRule

__all__ = ["LSTMOptimizer", "SymbolicOptimizer", "SymbolicRule"]
