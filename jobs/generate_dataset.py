"""Record a distillation dataset from a trained learned optimizer with a pool of Ray actors.

    ray job submit --working-dir . -- python jobs/generate_dataset.py --checkpoint <file> [--config <file>]
    ray job submit --working-dir . -- python jobs/generate_dataset.py --checkpoint <file> --smoke

The config holds the fields of ``cluster.config.GenerateJob``. Shards land in parallel under the output
folder (default ``<storage>/datasets/<name>``), with one ``manifest.json``; ``jobs/distill.py --dataset``
and ``l2o.distill.load_dataset`` read it. The last line printed is one JSON object (the manifest's summary).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.config import GenerateJob  # noqa: E402
from cluster.runtime import connect, job_args, job_from_args  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    job_args(p)
    p.add_argument("--checkpoint", default=None, help="the learned optimizer's checkpoint (overrides the config)")
    p.add_argument("--actors", type=int, default=None, help="actors (default: one per CPU, or GPU with use_gpu)")
    p.add_argument("--out", default=None, help="dataset folder or URI (default: <storage>/datasets/<name>)")
    args = p.parse_args(argv)
    job = job_from_args(GenerateJob, args, {"checkpoint": args.checkpoint, "actors": {"num_actors": args.actors},
                                            "out": args.out})
    connect()
    from cluster.generate import generate

    manifest = generate(job)
    print(f"dataset: {manifest['out']} ({manifest['rows']} rows from {len(manifest['shards'])} shards)")
    print(json.dumps({k: manifest[k] for k in ("out", "rows", "shards", "actors", "generate_seconds")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
