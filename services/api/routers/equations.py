"""``/equations``: the registry of distilled and hand-written rules, their math, plots and optimizers."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from sqlalchemy import select

from l2o.expr import Equation, EquationError
from services.api.db import EquationRow
from services.api.deps import SessionDep, SettingsDep, get_or_404, read_access, require_token
from services.api.registry import cached_render, export_source, math_svg, pareto_png, register
from services.api.schemas import ERRORS, EquationCreate, EquationDetail, EquationOut
from services.api.workers import WorkTimeout, bounded_parse, pool

router = APIRouter(prefix="/equations", tags=["equations"])
EquationId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("", response_model=list[EquationOut], dependencies=[Depends(read_access)], responses=ERRORS)
def list_equations(session: SessionDep, source_model: str | None = None, task: str | None = None,
                   sort: Literal["r2", "complexity", "created"] = "created",
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                   offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[EquationRow]:
    order = {"r2": EquationRow.r2.desc().nulls_last(), "complexity": EquationRow.complexity.asc(),
             "created": EquationRow.created.desc()}[sort]
    query = select(EquationRow).order_by(order, EquationRow.id).offset(offset).limit(limit)
    if source_model is not None:
        query = query.where(EquationRow.source_model == source_model)
    if task is not None:
        query = query.where(EquationRow.task == task)
    return list(session.scalars(query))


def get_row(session, equation_id: int) -> EquationRow:
    return get_or_404(session, EquationRow, equation_id, "equation")


@router.get("/{equation_id}", response_model=EquationDetail, dependencies=[Depends(read_access)],
            responses=ERRORS)
def get_equation(equation_id: EquationId, session: SessionDep) -> EquationRow:
    return get_row(session, equation_id)


@router.post("", response_model=EquationDetail, status_code=status.HTTP_201_CREATED,
             dependencies=[Depends(require_token)], responses={200: {"model": EquationDetail,
                                                                     "description": "already registered"}, **ERRORS})
def create_equation(body: EquationCreate, session: SessionDep, settings: SettingsDep,
                    response: Response) -> EquationRow:
    try:
        expr = bounded_parse(body.equation, settings.parse_timeout_s)
    except EquationError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"equation rejected: {err}") from err
    row, created = register(session, Equation(expr, r2=body.r2), body.source_model, body.task,
                            {**body.provenance, "registered_by": "POST /equations"})
    if not created:
        response.status_code = status.HTTP_200_OK
    return row


@router.get("/{equation_id}/optimizer.py", dependencies=[Depends(read_access)],
            response_class=Response, responses={200: {"content": {"text/x-python": {}}}, **ERRORS})
def optimizer_file(equation_id: EquationId, session: SessionDep, settings: SettingsDep) -> Response:
    row = get_row(session, equation_id)
    meta = {"registry_id": row.id, "source_model": row.source_model, "task": row.task}
    args = (row.text, row.r2, meta, f"Equation{row.id}Optimizer")
    try:  # generated once per row, like the drawings
        source = _made(settings, "py", f"{row.id}:{row.text}:{row.r2}:{meta}", export_source, args)
    except ValueError as err:  # variables that are not <feature>_<lag>: not an update rule
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"not an update rule: {err}") from err
    return Response(source, media_type="text/x-python",
                    headers={"Content-Disposition": f'attachment; filename="equation_{row.id}_optimizer.py"'})


def _made(settings, suffix: str, key: str, fn, args: tuple) -> bytes:
    """``fn(*args)``'s bytes, made once in a worker process (``render_timeout_s``) and kept."""
    try:
        return cached_render(settings.service_dir, suffix, key,
                             lambda _: pool("render").run(fn, args, settings.render_timeout_s))
    except WorkTimeout as err:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"rendering {err}",
                            headers={"Retry-After": "10"}) from err


@router.get("/{equation_id}/math.svg", dependencies=[Depends(read_access)], response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}, **ERRORS})
def equation_math(equation_id: EquationId, session: SessionDep, settings: SettingsDep) -> Response:
    row = get_row(session, equation_id)
    return Response(_made(settings, "svg", row.latex, math_svg, (row.latex,)), media_type="image/svg+xml",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/{equation_id}/pareto.png", dependencies=[Depends(read_access)], response_class=Response,
            responses={200: {"content": {"image/png": {}}}, **ERRORS})
def equation_pareto(equation_id: EquationId, session: SessionDep, settings: SettingsDep) -> Response:
    row = get_row(session, equation_id)
    if not row.pareto_front:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"equation {equation_id} has no Pareto front")
    png = _made(settings, "png", f"{row.id}:{row.text}", pareto_png, (row.pareto_front, row.text, row.text))
    return Response(png, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})
