"""Request and response bodies (apart from the storage rows in ``db``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

JobKind = Literal["meta_train", "generate", "distill", "pipeline"]


class Problem(BaseModel):
    """An error: ``detail`` says what was wrong (a text, or the list of validation errors)."""

    detail: Any


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "malformed request (for instance invalid multipart data)"},
    401: {"model": Problem, "description": "no valid bearer token"},
    404: {"model": Problem, "description": "no such resource"},
    409: {"model": Problem, "description": "the resource's state does not allow it"},
    413: {"model": Problem, "description": "request body too large"},
    422: {"model": Problem, "description": "invalid input"},
    429: {"model": Problem, "description": "busy: try again later"},
    503: {"model": Problem, "description": "Ray (or the engine) is unavailable"},
}
MAX_EQUATION_CHARS = 10_000
NAME_PATTERN = r"^[A-Za-z0-9_.:+/-]*$"  # names of sources and tasks: nothing a generated file could run


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: JobKind
    config: dict[str, Any] = Field(default_factory=dict, description="fields of the job's config dataclass")
    smoke: bool = Field(default=False, description="start from the job's smallest real size")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Times are stored in UTC; SQLite gives them back without their zone."""
    return value.replace(tzinfo=dt.timezone.utc) if value is not None and value.tzinfo is None else value


UTC = Annotated[dt.datetime, AfterValidator(_utc)]


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    kind: str
    status: str
    config: dict[str, Any]
    message: str | None = None
    created: UTC
    started: UTC | None = None
    ended: UTC | None = None
    result: dict[str, Any] | None = None


class JobDetail(JobOut):
    log_tail: str = ""
    dashboard: str | None = None


class EquationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "0.5" is not a number
    equation: str = Field(min_length=1, max_length=MAX_EQUATION_CHARS, description="the rule, e.g. -0.01*tanh(mt_0)")
    source_model: str = Field(default="", max_length=64, pattern=NAME_PATTERN)
    task: str = Field(default="", max_length=64, pattern=NAME_PATTERN)
    r2: float | None = Field(default=None, ge=-1e12, le=1.0, allow_inf_nan=False)
    provenance: dict[str, Any] = Field(default_factory=dict)


class EquationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    text: str
    latex: str
    complexity: int
    r2: float | None
    source_model: str
    task: str
    created: UTC


class EquationDetail(EquationOut):
    provenance: dict[str, Any]
    pareto_front: list[dict[str, Any]]


class DistillResult(BaseModel):
    mode: Literal["sync", "job"]
    equation: EquationDetail | None = None
    job_id: str | None = None
    rows: int


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
