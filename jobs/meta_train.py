"""Meta-train a learned optimizer on Ray Train.

    ray job submit --working-dir . -- python jobs/meta_train.py --config configs/meta_train.yaml
    ray job submit --working-dir . -- python jobs/meta_train.py --smoke

The config (JSON or YAML) holds the fields of ``cluster.config.MetaTrainJob``; ``--smoke`` starts from
its smallest real size. Connects to ``$RAY_ADDRESS`` (a submitted job finds its cluster by itself).
Prints the checkpoint of the run and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `cluster`

from cluster.config import MetaTrainJob  # noqa: E402
from cluster.runtime import connect, job_args, job_from_args  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    job_args(p)
    p.add_argument("--workers", type=int, default=None, help="override train.num_workers")
    p.add_argument("--name", default=None, help="run name under <storage>/ray")
    args = p.parse_args(argv)
    job = job_from_args(MetaTrainJob, args, {"train": {"num_workers": args.workers}, "name": args.name})
    connect()
    from cluster.train import CHECKPOINT_FILE, meta_train

    result = meta_train(job)
    if result.error:
        raise SystemExit(f"meta-training failed: {result.error}")
    path = Path(result.checkpoint.path) / CHECKPOINT_FILE
    print(f"checkpoint: {path}")
    print(json.dumps({"checkpoint": str(path), "metrics": result.metrics}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
