"""Dependencies: settings, a database session, the bearer-token guard, a Ray Jobs client."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from services.api.settings import Settings

_bearer = HTTPBearer(auto_error=False)


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request):
    yield from request.app.state.db.session()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]


def get_or_404(session: Session, model: type, key, what: str):
    """The row of ``model`` with primary key ``key``, or a 404 naming ``what``."""
    row = session.get(model, key)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {key!r}")
    return row


def _check(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    token = request.app.state.token  # read once at start-up
    if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a valid bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    _check(request, credentials)


async def read_access(request: Request, settings: SettingsDep) -> None:
    """Reads are open by default (``L2O_READ_OPEN``), so the schema does not mark them as secured."""
    if not settings.read_open:
        _check(request, await _bearer(request))


def ray_client(settings: Settings):
    """A Jobs API client for ``RAY_ADDRESS`` whose every call has ``ray_timeout_s``; 503 when Ray is not set
    or does not answer."""
    from services.api.ray_client import RayUnavailable, TimedJobClient

    if not settings.ray_address:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "RAY_ADDRESS is not set: no Ray cluster to submit to")
    try:
        return TimedJobClient(settings.ray_address, settings.ray_timeout_s)
    except RayUnavailable as err:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(err), headers={"Retry-After": "10"}) from err


def ray_jobs(settings: SettingsDep):
    return ray_client(settings)
