"""The whole method on Ray: meta-train (Ray Train) → record (actors) → search (Tune) → fit → select →
meta-tune → evaluate (tasks), the stages of ``l2o pipeline``.

    ray job submit --working-dir . -- python jobs/pipeline.py --config <file> [--run-id <id>]
    ray job submit --working-dir . -- python jobs/pipeline.py --smoke

The config holds the fields of ``cluster.config.PipelineJob``: ``pipeline`` (an l2o PipelineConfig) and
where its work runs. Artifacts go under ``<storage>/runs/<run id>/``; stages whose artifact exists are
skipped (rerun with the same ``--run-id`` to continue). The last line printed is one JSON object.
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
    p.add_argument("--stages", default=None, help="comma-separated stages to run (default: the config's)")
    args = p.parse_args(argv)
    job = job_from_args(PipelineJob, args, {"pipeline": {"run_id": args.run_id, "stages": args.stages}},
                        storage_key=("pipeline", "storage"))
    connect()
    from cluster.pipeline import run_pipeline_job

    report = run_pipeline_job(job)
    stages = report["stages"]
    if "evaluate" in stages:
        print(stages["evaluate"]["table"])
    print(f"report: {report['run']}/report.json")
    print(json.dumps({"run": report["run"], "seconds": report["seconds"],
                      "final_loss": stages.get("evaluate", {}).get("final_loss"),
                      "equation": stages.get("select", {}).get("update_rule"),
                      "skipped": [k for k, v in report["this_call"].items() if v["skipped"]]}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
