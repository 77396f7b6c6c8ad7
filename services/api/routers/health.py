"""``/healthz`` (the process answers) and ``/readyz`` (the database and Ray answer)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import text

from services.api.deps import SessionDep, SettingsDep
from services.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """On the event loop itself: it answers while every worker thread is busy."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(session: SessionDep, settings: SettingsDep, response: Response) -> Health:
    checks = {}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as err:  # any driver error means not ready
        checks["database"] = f"error: {type(err).__name__}"
    if not settings.ray_address:
        checks["ray"] = "error: RAY_ADDRESS is not set"
    else:
        import httpx

        try:
            r = httpx.get(f"{settings.ray_address.rstrip('/')}/api/version", timeout=min(5.0, settings.ray_timeout_s))
            checks["ray"] = "ok" if r.status_code == 200 else f"error: HTTP {r.status_code}"
        except httpx.HTTPError as err:
            checks["ray"] = f"error: {type(err).__name__}"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ready" if ready else "not ready", checks=checks)
