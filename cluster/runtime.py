"""Connecting to Ray and the options every job entrypoint shares."""

from __future__ import annotations

import argparse
import os
from typing import Any


def job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="job config, JSON or YAML (default: the built-in defaults)")
    p.add_argument("--smoke", action="store_true", help="the smallest real configuration (seconds to a minute)")
    p.add_argument("--storage", default=None, help="storage root, a path or URI (default: $L2O_STORAGE)")


def _given(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` without the values that were not given (None), recursively."""
    out = {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            value = _given(value)
            if value:
                out[key] = value
        elif value is not None:
            out[key] = value
    return out


def job_from_args(cls: type, args: argparse.Namespace, overrides: dict[str, Any] | None = None,
                  storage_key: tuple[str, ...] = ("storage",)):
    """The job of ``--config``/``--smoke`` with ``--storage`` (at ``storage_key``) and every override given."""
    from cluster.config import build_job
    from l2o.config import merge, read_config_file

    storage: dict[str, Any] = {}
    if args.storage:
        node = storage
        for key in storage_key[:-1]:
            node = node.setdefault(key, {})
        node[storage_key[-1]] = args.storage
    data = merge(merge(read_config_file(args.config), storage), _given(overrides or {}))
    return build_job(cls, data, smoke=args.smoke)


def connect(**kwargs):
    """``ray.init`` against ``$RAY_ADDRESS`` (or the cluster a submitted job runs in; else a local one)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, log_to_driver=True, **kwargs)
    return ray
