"""``/``: the server-rendered page — equations (typeset), their Pareto fronts, loss curves, jobs."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from services.api.db import EquationRow, JobRow
from services.api.deps import SessionDep, SettingsDep, read_access

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parents[1] / "templates"))


def _curves(settings) -> list[Path]:
    """Loss-curve plots written by evaluations and pipeline runs under the storage root (newest first)."""
    root = Path(settings.storage).expanduser()
    found = [*root.glob("pipeline/*/evaluate/curves.png"), *root.glob("eval/*/curves.png")]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)[:3]


@router.get("/", response_class=HTMLResponse, dependencies=[Depends(read_access)])
def index(request: Request, session: SessionDep, settings: SettingsDep):
    equations = list(session.scalars(select(EquationRow).order_by(EquationRow.created.desc()).limit(50)))
    jobs = list(session.scalars(select(JobRow).order_by(JobRow.created.desc()).limit(50)))
    root = Path(settings.storage).expanduser()
    curves = [str(p.relative_to(root)) for p in _curves(settings)]
    return templates.TemplateResponse(request, "index.html", {
        "equations": equations, "jobs": jobs, "curves": curves, "dashboard": settings.dashboard_url,
        "with_front": [e for e in equations if e.pareto_front][:3]})


@router.get("/plots/{path:path}", dependencies=[Depends(read_access)])
def plot(path: str, settings: SettingsDep):
    root = Path(settings.storage).expanduser().resolve()
    target = (root / path).resolve()
    if target.suffix != ".png" or not target.is_relative_to(root) or target not in {p.resolve() for p in _curves(settings)}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such plot")
    return FileResponse(target, media_type="image/png")
