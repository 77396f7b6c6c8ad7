"""``/distill``: symbolic regression on an uploaded or stored dataset — in the request when small,
otherwise as a Ray job. A synchronous result is registered in the equation registry.

In the request it runs the pipeline's search → fit → select functions (``l2o.pipeline.distill``) with
the same ``SearchConfig`` as every other caller; selection is by R² on the rows kept from the search,
since an uploaded table has no optimizee to roll rules out on.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile, status

from l2o.config import from_dict, to_dict
from l2o.distill.engines import SEARCHED, SearchConfig
from services.api.db import JobRow
from services.api.deps import SessionDep, SettingsDep, ray_jobs, require_token
from services.api.registry import register
from services.api.routers.jobs import submit, validate_config
from services.api.schemas import ERRORS, NAME_PATTERN, DistillResult, EquationDetail
from services.api.uploads import features_and_target, parse_table, read_limited
from services.api.workers import WorkTimeout, pool

router = APIRouter(tags=["distill"])
SR_KEYS = {"engine", "operators", "max_complexity", "population", "generations", "time_limit", "seed"}
LIMITS = {"max_complexity": (1, 200), "population": (10, 100_000), "generations": (1, 100_000), "seed": (0, 2**31 - 1)}
MAX_POINTS = 16  # searches one request may ask for (combinations of the listed settings)


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


def search_config(text: str, time_bound: float | None = None) -> SearchConfig:
    """The ``SearchConfig`` of the form field ``settings`` (a JSON object), bounded for a service."""
    try:
        value = json.loads(text or "{}")
    except ValueError as err:
        raise _unprocessable(f"settings is not JSON: {err}") from err
    if not isinstance(value, dict) or set(value) - SR_KEYS:
        raise _unprocessable(f"settings must be an object with keys among {sorted(SR_KEYS)}")
    if isinstance(value.get("operators"), str):
        value["operators"] = [value["operators"].split(",")]
    elif isinstance(value.get("operators"), list) and value["operators"] and all(
            isinstance(o, str) for o in value["operators"]):
        value["operators"] = [value["operators"]]
    for key in SEARCHED:
        if key in value and not isinstance(value[key], list):
            value[key] = [value[key]]
    for key, (lo, hi) in LIMITS.items():
        for v in value.get(key, []) if key in SEARCHED else [value[key]] if key in value else []:
            if not (isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi):
                raise _unprocessable(f"settings.{key} must be integers in [{lo}, {hi}]")
    if "time_limit" in value and not (isinstance(value["time_limit"], (int, float)) and not isinstance(
            value["time_limit"], bool) and 0 < value["time_limit"] <= 3600):
        raise _unprocessable("settings.time_limit must be in (0, 3600] seconds")
    if time_bound is not None:
        value["time_limit"] = min(float(value.get("time_limit") or time_bound), time_bound)
    try:
        config = from_dict(SearchConfig, value, "settings")
    except ValueError as err:
        raise _unprocessable(str(err)) from err
    if len(config.points(threads=1)) > MAX_POINTS:
        raise _unprocessable(f"settings ask for more than {MAX_POINTS} searches")
    return config


def _distill(X, y, cols, config: SearchConfig):
    from l2o.distill.select import SelectConfig, choose
    from l2o.pipeline import Placement
    from l2o.pipeline.distill import as_equations, fit_front, search_front

    front, searches = search_front(X, y, cols, config, Placement(), threads=1)
    candidates = fit_front(front, X, y, cols, config)
    chosen = candidates[choose(as_equations(candidates), SelectConfig(by="r2"))]
    return chosen, candidates, searches


_searching: anyio.CapacityLimiter | None = None  # synchronous searches at once (settings.sync_distill_concurrency)


def _limiter(settings) -> anyio.CapacityLimiter:
    global _searching
    if _searching is None:
        _searching = anyio.CapacityLimiter(settings.sync_distill_concurrency)
    return _searching


@router.post("/distill", response_model=DistillResult, dependencies=[Depends(require_token)], responses=ERRORS)
async def distill(session: SessionDep, settings: SettingsDep,
                  file: Annotated[UploadFile, File(description="Parquet, CSV or NPZ; or give dataset_id")] = None,
                  dataset_id: Annotated[str | None, Form(max_length=200)] = None,
                  target: Annotated[str, Form(max_length=64, pattern=NAME_PATTERN)] = "y",
                  sr_settings: Annotated[str, Form(alias="settings", max_length=10_000)] = "{}",
                  source_model: Annotated[str, Form(max_length=64, pattern=NAME_PATTERN)] = "",
                  task: Annotated[str, Form(max_length=64, pattern=NAME_PATTERN)] = "") -> DistillResult:
    if (file is None) == (dataset_id is None):
        raise _unprocessable("give exactly one of file and dataset_id")
    if dataset_id is not None:  # a stored dataset: always a job
        config = search_config(sr_settings)
        folder = Path(settings.storage).expanduser() / "datasets" / dataset_id
        if "/" in dataset_id or ".." in dataset_id or not (folder / "manifest.json").is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no stored dataset {dataset_id!r}")
        rows = json.loads((folder / "manifest.json").read_text()).get("rows", 0)
        return await anyio.to_thread.run_sync(_as_job, session, settings, {"dataset": str(folder)}, config, rows)
    config = search_config(sr_settings)
    data = await read_limited(file, int(settings.max_upload_mb * 2**20))
    frame, (X, y, cols) = await anyio.to_thread.run_sync(_table, data, file.filename or "", target,
                                                         settings.max_upload_cells)
    if len(y) > settings.sync_distill_rows:
        return await anyio.to_thread.run_sync(_upload_job, session, settings, config, frame, cols, y,
                                              source_model or "upload", file.filename)
    bounded = search_config(sr_settings, time_bound=settings.sync_distill_seconds)
    limiter = _limiter(settings)
    try:
        with anyio.fail_after(settings.sync_distill_seconds):  # the wait for a turn is bounded too
            await limiter.acquire()
    except TimeoutError:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "every synchronous search slot is busy",
                            headers={"Retry-After": str(int(settings.sync_distill_seconds))}) from None
    try:
        # in a worker process, stopped when constant fitting runs long past the search's own time bound
        chosen, candidates, searches = await anyio.to_thread.run_sync(
            pool("search", settings.sync_distill_concurrency).run, _distill, (X, y, cols, bounded),
            settings.sync_distill_seconds + 15)
    except WorkTimeout as err:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the search {err}",
                            headers={"Retry-After": str(int(settings.sync_distill_seconds))}) from err
    except (ValueError, TypeError) as err:  # settings the engine refuses
        raise _unprocessable(f"symbolic regression refused: {err}") from err
    except (ImportError, RuntimeError) as err:  # an engine that cannot run here (pysr without Julia)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"symbolic regression unavailable: {err}") from err
    finally:
        limiter.release()
    provenance = {"engine": bounded.engine, "settings": json.loads(sr_settings or "{}"), "rows": len(y),
                  "columns": cols, "upload": file.filename, "searches": searches,
                  "r2_search": chosen["r2_search"], "selection": "r2"}
    front = [{k: c[k] for k in ("equation", "complexity", "r2", "latex")} for c in candidates]
    row = await anyio.to_thread.run_sync(_register, session, chosen, source_model, task, provenance, front)
    return DistillResult(mode="sync", equation=EquationDetail.model_validate(row), rows=len(y))


def _register(session, chosen: dict[str, Any], source_model: str, task: str, provenance, front):
    """The chosen equation's registry row (in a worker thread: the database is never used on the event loop)."""
    from l2o.expr import Equation, parse_equation

    eq = Equation(parse_equation(chosen["equation"]), r2=chosen["r2"])
    return register(session, eq, source_model, task, provenance, front)[0]


def _upload_job(session, settings, config: SearchConfig, frame, cols: list[str], y, model: str, source: str | None
                ) -> DistillResult:
    """A large upload kept under ``<storage>/uploads`` and distilled as a Ray job; nothing stays if that fails."""
    client = ray_jobs(settings)  # 503 before anything is written when Ray is not there
    folder = Path(settings.storage).expanduser() / "uploads" / uuid.uuid4().hex[:12]
    try:
        folder.mkdir(parents=True)
        frame[cols].assign(update=y).to_parquet(folder / "data.parquet", index=False)
        (folder / "manifest.json").write_text(json.dumps({"feature_columns": cols, "rows": len(y), "model": model,
                                                          "source": source}))
        upload = dataclasses.replace(config, columns=tuple(cols), target="update")  # the table's own columns
        return _as_job(session, settings, {"dataset": str(folder)}, upload, len(y), client=client)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # a request that fails leaves nothing behind
        raise


def _table(data: bytes, filename: str, target: str, max_cells: int):
    frame = parse_table(data, filename, max_cells)
    return frame, features_and_target(frame, target)


def _as_job(session, settings, config: dict[str, Any], search: SearchConfig, rows: int, client=None) -> DistillResult:
    full = validate_config("distill", {**config, "search": to_dict(search)}, smoke=False)
    job_id = submit(client or ray_jobs(settings), settings, "distill", full)
    session.add(JobRow(id=job_id, kind="distill", config=full, status="PENDING"))
    session.commit()
    return DistillResult(mode="job", job_id=job_id, rows=rows)
