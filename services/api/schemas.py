"""Request and response bodies (apart from the storage rows in ``db``)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobKind = Literal["meta_train", "generate", "distill", "pipeline"]
MAX_EQUATION_CHARS = 10_000


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: JobKind
    config: dict[str, Any] = Field(default_factory=dict, description="fields of the job's config dataclass")
    smoke: bool = Field(default=False, description="start from the job's smallest real size")


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    kind: str
    status: str
    config: dict[str, Any]
    message: str | None = None
    created: dt.datetime
    started: dt.datetime | None = None
    ended: dt.datetime | None = None
    result: dict[str, Any] | None = None


class JobDetail(JobOut):
    log_tail: str = ""
    dashboard: str | None = None


class EquationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    equation: str = Field(max_length=MAX_EQUATION_CHARS, description="the rule, e.g. -0.01*tanh(mt_0)")
    source_model: str = Field(default="", max_length=64)
    task: str = Field(default="", max_length=64)
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
    created: dt.datetime


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
