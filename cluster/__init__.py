"""The Ray layer: Ray Train wiring, rollout actors and Tune searches built from ``l2o`` objects.

Dependencies run one way: ``l2o ← cluster ← jobs``. Nothing in ``l2o`` imports this package.
"""
