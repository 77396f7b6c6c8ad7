"""Connecting to Ray and the options every job entrypoint shares."""

from __future__ import annotations

import argparse
import os


def job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="job config, JSON or YAML (default: the built-in defaults)")
    p.add_argument("--smoke", action="store_true", help="the smallest real configuration (seconds to a minute)")
    p.add_argument("--storage", default=None, help="storage root, a path or URI (default: $L2O_STORAGE)")


def connect(**kwargs):
    """``ray.init`` against ``$RAY_ADDRESS`` (or the cluster a submitted job runs in; else a local one)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, log_to_driver=True, **kwargs)
    return ray
