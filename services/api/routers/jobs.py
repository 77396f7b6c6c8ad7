"""``/jobs``: submit the project's Ray jobs through the Jobs API, list them, follow them, stop and forget them."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from sqlalchemy import select

from services.api.db import JobRow
from services.api.deps import SessionDep, SettingsDep, get_or_404, ray_jobs, read_access, require_token
from services.api.ray_client import RayUnavailable, call
from services.api.schemas import ERRORS, JobCreate, JobDetail, JobKind, JobOut

router = APIRouter(prefix="/jobs", tags=["jobs"])
SCRIPTS = {"meta_train": "meta_train.py", "generate": "generate_dataset.py", "distill": "distill.py",
           "pipeline": "pipeline.py"}
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
UNKNOWN = "UNKNOWN"  # Ray did not answer about the job
JobId = Annotated[str, Path(max_length=128)]


def validate_config(kind: str, config: dict[str, Any], smoke: bool) -> dict[str, Any]:
    """The job's full config (smoke base + given fields), checked by the job's own dataclass."""
    from cluster.config import JOBS, build_job
    from l2o.config import to_dict

    cls = JOBS[kind]
    try:
        job = build_job(cls, config, smoke)
    except (TypeError, ValueError) as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid {kind} config: {err}") from err
    if kind == "generate" and not job.checkpoint:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a generate job needs config.checkpoint")
    if kind == "distill" and not job.dataset:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a distill job needs config.dataset")
    return to_dict(job)


def submit(client, settings, kind: str, full: dict[str, Any]) -> str:
    """Submit a job whose config file is written first; a submission that fails leaves no file behind."""
    path = settings.service_dir / "configs" / f"{kind}-{uuid.uuid4().hex[:12]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(full, indent=1, default=str))
    entrypoint = shlex.join(["python", f"jobs/{SCRIPTS[kind]}", "--config", str(path), "--storage", settings.storage])
    try:
        return call(client.submit_job, entrypoint=entrypoint, runtime_env={"working_dir": settings.job_working_dir})
    except RayUnavailable as err:  # e.g. "No available agent to submit job, please try again later"
        path.unlink(missing_ok=True)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Ray did not take the job: {err}",
                            headers={"Retry-After": "10"}) from err


def _ts(ms: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc) if ms else None


def refresh(client, row: JobRow) -> bool:
    """Bring a row up to date with Ray while it is not finished; False when Ray did not answer, and the row
    then reads UNKNOWN (until Ray answers again: it is not a final state)."""
    if row.status in TERMINAL:
        return True
    try:
        info = call(client.get_job_info, row.id) if client is not None else None
        if info is None:
            raise RayUnavailable("Ray is unreachable")
    except RayUnavailable as err:
        row.status, row.message = UNKNOWN, f"status unavailable: {err}"[:2000]
        return False
    row.status, row.message = str(info.status.value), info.message
    row.started, row.ended = _ts(info.start_time), _ts(info.end_time)
    if row.status in TERMINAL:
        try:
            row.result = last_json(call(client.get_job_logs, row.id))
        except RayUnavailable:
            row.result = None
    return True


def _client_or_none(settings):
    try:
        return ray_jobs(settings)
    except HTTPException:  # Ray does not answer: the rows say so
        return None


def last_json(logs: str) -> dict[str, Any] | None:
    for line in reversed(logs.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        return value if isinstance(value, dict) else None
    return None


@router.post("", response_model=JobOut, status_code=status.HTTP_201_CREATED,
             dependencies=[Depends(require_token)], responses=ERRORS)
def create_job(body: JobCreate, session: SessionDep, settings: SettingsDep, client=Depends(ray_jobs)) -> JobRow:
    full = validate_config(body.kind, body.config, body.smoke)
    job_id = submit(client, settings, body.kind, full)
    row = JobRow(id=job_id, kind=body.kind, config=full, status="PENDING")
    session.add(row)
    session.commit()
    return row


@router.get("", response_model=list[JobOut], dependencies=[Depends(read_access)], responses=ERRORS)
def list_jobs(session: SessionDep, settings: SettingsDep, kind: JobKind | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[JobRow]:
    query = select(JobRow).order_by(JobRow.created.desc()).limit(limit)
    if kind:
        query = query.where(JobRow.kind == kind)
    rows = list(session.scalars(query))
    if any(r.status not in TERMINAL for r in rows) and settings.ray_address:
        client = _client_or_none(settings)
        for r in rows:
            if not refresh(client, r):
                client = None  # Ray did not answer: the rest read UNKNOWN without waiting again
        session.commit()
    return rows


@router.get("/{job_id}", response_model=JobDetail, dependencies=[Depends(read_access)], responses=ERRORS)
def get_job(job_id: JobId, session: SessionDep, settings: SettingsDep,
            lines: Annotated[int, Query(ge=1, le=2000, description="log lines")] = 50) -> JobDetail:
    row = get_or_404(session, JobRow, job_id, "job")
    tail = ""
    if settings.ray_address:
        client = _client_or_none(settings)
        answered = refresh(client, row)
        session.commit()
        try:
            if not answered:
                raise RayUnavailable(row.message or "Ray is unreachable")
            tail = "\n".join(call(client.get_job_logs, job_id).splitlines()[-lines:])
        except RayUnavailable as err:  # logs of a job the cluster no longer knows
            tail = f"(logs unavailable: {err})"
    return JobDetail(**JobOut.model_validate(row).model_dump(), log_tail=tail,
                     dashboard=f"{settings.dashboard_url}/#/jobs/{job_id}" if settings.dashboard_url else None)


@router.post("/{job_id}/stop", response_model=JobOut, dependencies=[Depends(require_token)], responses=ERRORS)
def stop_job(job_id: JobId, session: SessionDep, client=Depends(ray_jobs)) -> JobRow:
    """Stop a job that has not finished; a finished job is returned as it is."""
    row = get_or_404(session, JobRow, job_id, "job")
    if row.status not in TERMINAL:
        try:
            call(client.stop_job, job_id)
        except RayUnavailable as err:  # a job the cluster no longer knows, or a cluster that stopped answering
            refresh(client, row)
            session.commit()
            raise HTTPException(status.HTTP_409_CONFLICT, f"Ray could not stop job {job_id!r}: {err}") from err
        refresh(client, row)
        session.commit()
    return row


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               dependencies=[Depends(require_token)], responses=ERRORS)
def delete_job(job_id: JobId, session: SessionDep, settings: SettingsDep) -> Response:
    """Forget a finished job: its row here and, where Ray still answers for it, Ray's record. A job that has
    not finished is refused (409: stop it first); its row is kept."""
    row = get_or_404(session, JobRow, job_id, "job")
    client = _client_or_none(settings) if settings.ray_address else None
    if row.status not in TERMINAL and client is not None:
        refresh(client, row)  # it may have finished since it was last read
    if row.status not in TERMINAL:
        session.commit()
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"job {job_id!r} is {row.status}: stop it first (POST /jobs/{job_id}/stop)")
    if client is not None:
        try:
            call(client.delete_job, job_id)
        except RayUnavailable:  # Ray no longer knows the job (a restarted cluster) or stopped answering
            pass
    session.delete(row)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
