"""Connecting to Ray and the options every job entrypoint shares."""

from __future__ import annotations

import argparse
import os


def job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="job config, JSON or YAML (default: the built-in defaults)")
    p.add_argument("--smoke", action="store_true", help="the smallest real configuration (seconds to a minute)")
    p.add_argument("--storage", default=None, help="storage root, a path or URI (default: $L2O_STORAGE)")


def job_from_args(cls: type, args: argparse.Namespace, **overrides):
    """The job of ``--config``/``--smoke`` with ``--storage`` and every override that was given (not None)."""
    from cluster.config import load_job

    job = load_job(cls, args.config, smoke=args.smoke)
    for key, value in {"storage": args.storage, **overrides}.items():
        if value is not None:
            setattr(job, key, value)
    return job


def connect(**kwargs):
    """``ray.init`` against ``$RAY_ADDRESS`` (or the cluster a submitted job runs in; else a local one)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, log_to_driver=True, **kwargs)
    return ray
