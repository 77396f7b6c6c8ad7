"""Per-coordinate features: one registry of their maths, the plan of what a rule over them needs, and
the one step program every implementation runs (see ``registry``, ``plan`` and ``step``)."""

from l2o.features.plan import RulePlan, feature_columns, parse_variable
from l2o.features.registry import BUILTIN, FEATURES, MOMENTS, Feature, Moment, ema, register, registered
from l2o.features.step import FeatureExtractor, FeatureState, features, features_foreach, write_history

__all__ = ["BUILTIN", "FEATURES", "MOMENTS", "Feature", "FeatureExtractor", "FeatureState", "Moment", "RulePlan",
           "ema", "feature_columns", "features", "features_foreach", "parse_variable", "register", "registered",
           "write_history"]
