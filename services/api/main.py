"""The app: ``uvicorn services.api.main:app`` (settings from the environment; see ``settings``)."""

from __future__ import annotations

from pathlib import Path

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from services.api.db import Database
from services.api.guard import RequestGuard
from services.api.routers import distill, equations, health, jobs, pages
from services.api.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Symbolic L2O", version="0.1.0",
                  description="Submit meta-training, dataset, distillation and pipeline jobs to Ray; distil "
                              "uploaded datasets; browse, register and download equations as torch optimizers. "
                              "Mutating endpoints need `Authorization: Bearer <L2O_API_TOKEN>`.")
    app.state.settings = settings
    app.state.db = Database(settings.db_url)
    app.state.token = settings.token()  # the setting, or the token file (created now when missing)
    # the token and the body's size are checked before routing, whatever the framing (services.api.guard)
    app.add_middleware(RequestGuard, token=app.state.token, read_open=settings.read_open,
                       upload_limit=int(settings.max_upload_mb * 2**20) + 2**20)  # an upload and its form fields

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with the validation errors; echoed inputs such as NaN become text (JSON has no NaN)."""
        return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)

    for module in (health, jobs, distill, equations, pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).with_name("static"))), name="static")
    return app


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


app = create_app()
