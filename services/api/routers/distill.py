"""``/distill``: symbolic regression on an uploaded or stored dataset — in the request when small,
otherwise as a Ray job. A synchronous result is registered in the equation registry."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile, status

from l2o.distill.engines import ENGINES
from services.api.db import JobRow
from services.api.deps import SessionDep, SettingsDep, ray_jobs, require_token
from services.api.registry import register
from services.api.routers.jobs import submit, validate_config
from services.api.schemas import DistillResult, EquationDetail
from services.api.uploads import features_and_target, parse_table, read_limited

router = APIRouter(tags=["distill"])
SR_KEYS = {"engine", "operators", "max_complexity", "population", "generations", "time_limit", "seed"}


def _settings(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"settings is not JSON: {err}") from err
    if not isinstance(value, dict) or set(value) - SR_KEYS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"settings must be an object with keys among {sorted(SR_KEYS)}")
    limits = {"max_complexity": (1, 200), "population": (10, 100_000), "generations": (1, 100_000),
              "seed": (0, 2**31 - 1)}
    for key, (lo, hi) in limits.items():
        if key in value and not (isinstance(value[key], int) and not isinstance(value[key], bool)
                                 and lo <= value[key] <= hi):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"settings.{key} must be an integer in [{lo}, {hi}]")
    if "time_limit" in value and not (isinstance(value["time_limit"], (int, float))
                                      and 0 < value["time_limit"] <= 3600):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "settings.time_limit must be in (0, 3600] seconds")
    if "engine" in value and value["engine"] not in ENGINES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"settings.engine must be one of {ENGINES}")
    if "operators" in value and not isinstance(value["operators"], (str, list)):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "settings.operators: a comma-separated string or a list")
    return value


def _search(X, y, cols, sr: dict[str, Any], time_bound: float):
    from l2o.distill.engines import make_engine
    from l2o.distill.fit import fit_constants

    sr = dict(sr)
    engine = sr.pop("engine", "operon")
    if "operators" in sr:
        sr["operators"] = tuple(str(sr["operators"]).split(",")) if isinstance(sr["operators"], str) else tuple(
            sr["operators"])
    sr["time_limit"] = min(float(sr.get("time_limit") or time_bound), time_bound)
    est = make_engine(engine, **sr).fit(X, y, cols)
    fitted, _ = fit_constants(est.best_, X, y, cols)
    return fitted, [e.to_dict() for e in est.pareto_front_], engine, est.seconds_


@router.post("/distill", response_model=DistillResult, dependencies=[Depends(require_token)],
             responses={413: {"description": "upload too large"}})
async def distill(session: SessionDep, settings: SettingsDep,
                  file: Annotated[UploadFile | None, File(description="Parquet, CSV or NPZ")] = None,
                  dataset_id: Annotated[str | None, Form(max_length=200)] = None,
                  target: Annotated[str, Form(max_length=64)] = "y",
                  sr_settings: Annotated[str, Form(alias="settings", max_length=10_000)] = "{}",
                  source_model: Annotated[str, Form(max_length=64)] = "",
                  task: Annotated[str, Form(max_length=64)] = "") -> DistillResult:
    sr = _settings(sr_settings)
    if (file is None) == (dataset_id is None):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give exactly one of file and dataset_id")
    if dataset_id is not None:  # a stored dataset: always a job
        folder = Path(settings.storage).expanduser() / "datasets" / dataset_id
        if "/" in dataset_id or ".." in dataset_id or not (folder / "manifest.json").is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no stored dataset {dataset_id!r}")
        rows = json.loads((folder / "manifest.json").read_text()).get("rows", 0)
        return _as_job(session, settings, {"dataset": str(folder)}, sr, rows=rows)
    data = await read_limited(file, int(settings.max_upload_mb * 2**20))
    frame = parse_table(data, file.filename or "")
    X, y, cols = features_and_target(frame, target)
    if len(y) > settings.sync_distill_rows:
        folder = Path(settings.storage).expanduser() / "uploads" / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        frame[cols].assign(update=y).to_parquet(folder / "data.parquet", index=False)
        (folder / "manifest.json").write_text(json.dumps({"feature_columns": cols, "model": source_model or "upload",
                                                          "rows": len(y), "source": file.filename}))
        return _as_job(session, settings, {"dataset": str(folder), "columns": cols, "target": "update"}, sr,
                       rows=len(y))
    try:
        with anyio.fail_after(settings.sync_distill_seconds + 30):
            fitted, front, engine, seconds = await anyio.to_thread.run_sync(
                _search, X, y, cols, sr, settings.sync_distill_seconds)
    except (ValueError, TypeError) as err:  # settings the engine refuses (unknown operator, …)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"symbolic regression refused: {err}") from err
    except (ImportError, RuntimeError) as err:  # an engine that cannot run here (pysr without Julia)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"symbolic regression unavailable: {err}") from err
    row, _ = register(session, fitted, source_model, task,
                      {"engine": engine, "settings": sr, "rows": len(y), "columns": cols, "upload": file.filename,
                       "search_seconds": seconds}, front)
    return DistillResult(mode="sync", equation=EquationDetail.model_validate(row), rows=len(y))


def _as_job(session, settings, config: dict[str, Any], sr: dict[str, Any], rows: int) -> DistillResult:
    search = {k: [v] for k, v in sr.items() if k in {"engine", "operators", "max_complexity", "population",
                                                      "generations"}}
    if "operators" in search and not isinstance(search["operators"][0], str):
        search["operators"] = [",".join(search["operators"][0])]
    full = validate_config("distill", {**config, **({"time_limit": sr["time_limit"]} if "time_limit" in sr else {}),
                                       "search": {**DEFAULT_SEARCH, **search}}, smoke=False)
    job_id = submit(ray_jobs(settings), settings, "distill", full)
    session.add(JobRow(id=job_id, kind="distill", config=full, status="PENDING"))
    session.commit()
    return DistillResult(mode="job", job_id=job_id, rows=rows)


DEFAULT_SEARCH = {"engine": ["operon"], "operators": ["add,sub,mul,div,tanh,exp,abs,square,sqrt"],
                  "max_complexity": [10, 20, 30], "population": [500], "generations": [100], "parsimony": [0.0, 1e-3]}
