"""Distillation: rollout datasets, symbolic-regression engines, constant fitting, selection, the sanity table.

Equations come from text only through the whitelist parser of ``l2o.expr``.
"""

from l2o.distill.engines import ENGINES, OPERATORS, SearchConfig, make_engine, r2_score
from l2o.distill.fit import fit_constants
from l2o.distill.record import Dataset, RecordConfig, default_features, load_dataset, record, save_dataset
from l2o.distill.select import SelectConfig, choose, choose_by_r2, choose_by_rollout, eligible, pool_fronts

__all__ = ["ENGINES", "OPERATORS", "Dataset", "RecordConfig", "SearchConfig", "SelectConfig", "choose",
           "choose_by_r2", "choose_by_rollout", "default_features", "fit_constants", "load_dataset", "make_engine",
           "eligible", "pool_fronts", "r2_score", "record", "save_dataset"]
