"""Evaluation: roll optimizers on tasks over seeds, compare against baselines, save curves and plots."""

from l2o.eval.optimizers import OPTIMIZER_NAMES, OptimizerSpec
from l2o.eval.report import format_table, load_json, plot_curves, save_csv, save_json
from l2o.eval.rollout import FINAL_WINDOW, Curves, rollout
from l2o.eval.tuning import DEFAULT_GRID, lr_grid, tune_lr

__all__ = ["DEFAULT_GRID", "FINAL_WINDOW", "OPTIMIZER_NAMES", "Curves", "OptimizerSpec", "format_table",
           "load_json", "lr_grid", "plot_curves", "rollout", "save_csv", "save_json", "tune_lr"]
