"""The app: ``uvicorn services.api.main:app`` (settings from the environment; see ``settings``)."""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.routing import Match

from services.api import workers
from services.api.db import Database
from services.api.guard import RequestGuard
from services.api.routers import distill, equations, health, jobs, pages
from services.api.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # request threads: fewer contenders for the interpreter lock keep the event loop answering
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        pools = [workers.pool(name, processes) for name, processes in
                 (("parse", 2), ("render", 2), ("search", settings.sync_distill_concurrency))]
        for p in pools:
            p.start()  # the pools import their modules side by side
        for p in pools:  # the service answers once its workers can take work
            await anyio.to_thread.run_sync(p.ready)
        yield
        workers.close()  # the worker processes end with the service

    app = FastAPI(title="Symbolic L2O", lifespan=lifespan, version="0.1.0",
                  description="Submit meta-training, dataset, distillation and pipeline jobs to Ray; distil "
                              "uploaded datasets; browse, register and download equations as torch optimizers. "
                              "Mutating endpoints need `Authorization: Bearer <L2O_API_TOKEN>`.")
    app.state.settings = settings
    app.state.db = Database(settings.db_url, pool_size=settings.threads, pool_timeout=settings.db_timeout_s,
                            busy_timeout=settings.db_timeout_s)
    app.state.token = settings.token()  # the setting, or the token file (created now when missing)
    # the token and the body's size are checked before routing, whatever the framing (services.api.guard)
    app.add_middleware(RequestGuard, token=app.state.token, read_open=settings.read_open,
                       upload_limit=int(settings.max_upload_mb * 2**20) + 2**20)  # an upload and its form fields

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with the validation errors; echoed inputs such as NaN become text (JSON has no NaN)."""
        return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(SATimeoutError)
    @app.exception_handler(OperationalError)
    async def database_busy(request: Request, exc: Exception) -> JSONResponse:
        """503 with Retry-After when no connection or lock came within ``db_timeout_s``; nothing was written."""
        if isinstance(exc, OperationalError) and "locked" not in str(exc.orig):
            raise exc
        return JSONResponse({"detail": f"the database is busy: {type(exc).__name__}; retry"}, status_code=503,
                            headers={"Retry-After": "2"})

    for module in (health, jobs, distill, equations, pages):
        app.include_router(module.router)

    @app.options("/{path:path}", include_in_schema=False)
    def options(path: str, request: Request) -> Response:
        """204 with ``Allow``: the methods of every route at this path (Starlette's 405 names one route's)."""
        allowed = {method for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
                   if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in app.routes)}
        if not allowed:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return Response(status_code=204, headers={"Allow": ", ".join(sorted(allowed | {"OPTIONS"}))})
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
