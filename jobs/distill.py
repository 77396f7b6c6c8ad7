"""Distil a recorded dataset on Ray: the searches as Tune trials, then constant fitting and selection.

    ray job submit --working-dir . -- python jobs/distill.py --dataset <folder> [--config <file>]
    ray job submit --working-dir . -- python jobs/distill.py --dataset <folder> --smoke

The config holds the fields of ``cluster.config.DistillJob``: settings given as several values under
``search`` are searched, one Tune trial per combination. Writes a run folder (``search/``, ``fit/``,
``select/equations.json`` with the chosen rule and its update rule); the last line printed is one JSON
object.
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
    p.add_argument("--out", default=None, help="run folder (default: next to the dataset)")
    args = p.parse_args(argv)
    job = job_from_args(DistillJob, args, {"dataset": args.dataset, "out": args.out})
    connect()
    from cluster.pipeline import run_distill_job

    report = run_distill_job(job)
    chosen = report["stages"]["select"]
    print(f"chosen: {chosen['equation']}  (held-out R² {chosen['r2']}, {chosen['complexity']} nodes)")
    print(json.dumps({"run": report["run"], "trials": report["stages"]["search"]["searches"],
                      **{k: chosen[k] for k in ("equation", "update_rule", "r2", "complexity", "by")}}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
