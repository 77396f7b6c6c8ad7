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


def read_access(request: Request, settings: SettingsDep,
                credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    if not settings.read_open:
        _check(request, credentials)


def ray_jobs(settings: SettingsDep):
    """A ``JobSubmissionClient`` for ``RAY_ADDRESS``; 503 when Ray is not reachable."""
    from ray.job_submission import JobSubmissionClient

    if not settings.ray_address:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "RAY_ADDRESS is not set: no Ray cluster to submit to")
    try:
        return JobSubmissionClient(settings.ray_address)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Ray at {settings.ray_address} is unreachable: {err}")
