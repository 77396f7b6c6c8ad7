"""One run folder: a subfolder per stage, each finished by a small ``manifest.json``.

    <storage>/runs/<run id>/
        config.json                   the PipelineConfig of the run
        meta_train/checkpoint.pt      the learned optimizer (written as it trains: a stopped run resumes)
        record/search/, record/test/  rollout datasets (Parquet + manifest) searched on / scored on
        search/front.json             the pooled Pareto front of every search
        fit/candidates.json           every candidate with its constants fitted, R² and update rule
        select/equations.json         the chosen rule (``update_rule``), the candidates' rollout losses, plots
        meta_tune/equation.json       the chosen rule meta-tuned (``tuned``), the better of the two on fresh
                                      meta_valid optimizees (``update_rule``, ``compare``); optimizer.py
        evaluate/                     results.json, curves.csv, curves.png, table.txt
        report.json                   what each stage did, the equations, the evaluation

A stage is done when its manifest exists; the manifest is written last, so a stage that stopped half-way
runs again. Every stage reads only the folders of earlier stages, so each can run alone.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from l2o.config import from_dict, to_dict
from l2o.pipeline.config import PipelineConfig
from l2o.storage import storage_root

MANIFEST = "manifest.json"


def finite(value: Any) -> Any:
    """``value`` with every non-finite float turned into None (JSON has no inf or NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_json(path: Path, doc: Any) -> Path:
    """``doc`` as JSON at ``path``, atomically (a temporary file renamed); inf and NaN become null."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(finite(doc), f, indent=1, default=str, allow_nan=False)
    os.replace(tmp, path)
    return path


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


class Run:
    """The folders and manifests of one run."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @classmethod
    def of(cls, config: PipelineConfig) -> "Run":
        run_id = config.run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return cls(storage_root(config.storage) / "runs" / run_id)

    def stage(self, name: str) -> Path:
        return self.root / name

    def done(self, name: str) -> bool:
        return (self.stage(name) / MANIFEST).is_file()

    def manifest(self, name: str) -> dict[str, Any]:
        path = self.stage(name) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"stage {name!r} of {self.root} has not run (no {path})")
        return read_json(path)

    def finish(self, name: str, manifest: dict[str, Any]) -> dict[str, Any]:
        write_json(self.stage(name) / MANIFEST, manifest)
        return manifest

    def save_config(self, config: PipelineConfig) -> None:
        write_json(self.root / "config.json", to_dict(config))

    def config(self) -> PipelineConfig:
        return from_dict(PipelineConfig, read_json(self.root / "config.json"))
