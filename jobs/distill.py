"""Search symbolic-regression settings with Ray Tune over a recorded dataset; keep the best equation.

    ray job submit --working-dir . -- python jobs/distill.py --dataset <folder> [--config <file>]
    ray job submit --working-dir . -- python jobs/distill.py --dataset <folder> --smoke

The config holds the fields of ``cluster.config.DistillJob`` (the search space under ``search``: lists
are sampled). Writes ``best.json`` (equation, R², LaTeX, the trial's config, and the update rule) and
``trials.json``; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.config import DistillJob  # noqa: E402
from cluster.runtime import connect, job_args, job_from_args  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    job_args(p)
    p.add_argument("--dataset", default=None, help="dataset folder (overrides the config)")
    p.add_argument("--out", default=None, help="output folder (default: next to the dataset)")
    p.add_argument("--search-alg", default=None, choices=("optuna", "random"), help="override search_alg")
    args = p.parse_args(argv)
    job = job_from_args(DistillJob, args, dataset=args.dataset, out=args.out, search_alg=args.search_alg)
    connect()
    from cluster.distill import distill

    best = distill(job)
    print(f"best: {best['equation']}  (held-out R² {best['r2']:.4f}, complexity {best['complexity']})")
    print(json.dumps({k: best[k] for k in ("out", "equation", "r2", "complexity", "trials")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
