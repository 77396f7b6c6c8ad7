"""The whole method in one run: meta-train → generate → distill → fit → meta-tune → evaluate.

    ray job submit --working-dir . -- python jobs/pipeline.py --config <file> [--run-id <id>]
    ray job submit --working-dir . -- python jobs/pipeline.py --smoke

Artifacts go under ``<storage>/pipeline/<run id>/``; stages whose artifact exists are skipped (rerun with
the same ``--run-id`` to continue). Ends with ``report.json`` and PNGs; the last line printed is one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.config import PipelineJob  # noqa: E402
from cluster.runtime import connect, job_args, job_from_args  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    job_args(p)
    p.add_argument("--run-id", default=None, help="run folder name; an existing one continues (default: UTC time)")
    args = p.parse_args(argv)
    job = job_from_args(PipelineJob, args, run_id=args.run_id)
    connect()
    from cluster.pipeline import run_pipeline

    report = run_pipeline(job)
    print(f"report: {report['run']}/report.json")
    print(json.dumps({"run": report["run"], "seconds": report["seconds"],
                      "final_loss": report["stages"]["evaluate"].get("final_loss"),
                      "skipped": [k for k, v in report["this_call"].items() if v["skipped"]]}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
