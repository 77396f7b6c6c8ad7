"""Registering equations (no duplicates) and drawing them: rendered math (SVG) and Pareto fronts (PNG).

Registration is idempotent under the table's unique constraint: two requests racing to register the same
rule for the same source and task get the same row. Drawings and exported optimizers are made once per
equation and kept under ``<storage>/service/render``; concurrent first requests wait for one render.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from l2o.expr import Equation
from services.api.db import EquationRow


def register(session: Session, eq: Equation, source_model: str = "", task: str = "",
             provenance: dict[str, Any] | None = None, pareto_front: list[dict[str, Any]] | None = None
             ) -> tuple[EquationRow, bool]:
    """The row of ``eq`` for this source and task, created if new; True when it was created."""
    text = eq.text
    query = select(EquationRow).where(EquationRow.text == text, EquationRow.source_model == source_model,
                                      EquationRow.task == task)
    row = session.scalar(query)
    if row is not None:
        return row, False
    row = EquationRow(text=text, latex=eq.latex(), complexity=eq.complexity, r2=eq.to_dict()["r2"],
                      source_model=source_model, task=task, provenance=provenance or dict(eq.meta),
                      pareto_front=pareto_front or [])
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # registered by a request that raced this one: theirs is the row
        session.rollback()
        return session.scalar(query), False
    return row, True


_render_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
MAX_TYPESET_CHARS = 1500  # longer LaTeX is shown as text: mathtext takes seconds on a few hundred terms


def cached_render(service_dir: Path, suffix: str, key: str, render) -> bytes:
    """``render(key)``'s bytes, rendered once and kept on disk under a hash of ``key``."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    path = service_dir / "render" / f"{digest}.{suffix}"
    if path.is_file():
        return path.read_bytes()
    with _locks_guard:
        lock = _render_locks.setdefault(digest, threading.Lock())
    with lock:
        if not path.is_file():
            data = render(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{digest}.")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
            return data
    return path.read_bytes()


def export_source(text: str, r2: float | None, meta: dict[str, Any], name: str) -> bytes:
    """The downloadable ``optimizer.py`` of a registered rule."""
    from l2o.expr import parse_equation
    from l2o.optim.export import export_optimizer

    return export_optimizer(Equation(parse_equation(text), r2=r2, meta=meta), name=name).encode()


def _figure(width: float, height: float):
    """A figure outside pyplot's global state (requests render in several threads at once)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _save(fig, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, **kwargs)
    return buf.getvalue()


def math_svg(latex: str) -> bytes:
    """The equation typeset by matplotlib's mathtext (no TeX, no network) as SVG; LaTeX too long to typeset
    quickly, or that mathtext cannot typeset, is drawn as its source."""
    if len(latex) <= MAX_TYPESET_CHARS:
        fig = _figure(8, 0.8)
        fig.text(0.01, 0.5, f"${latex}$", fontsize=15, va="center")
        try:
            return _save(fig, "svg", bbox_inches="tight", transparent=True)
        except ValueError:  # a construct mathtext cannot typeset
            pass
    fig = _figure(8, 0.8)
    shown = latex if len(latex) <= MAX_TYPESET_CHARS else latex[:MAX_TYPESET_CHARS] + " …"
    fig.text(0.01, 0.5, "\n".join(textwrap.wrap(shown.replace("$", ""), 120)), fontsize=9, va="center",
             family="monospace")
    return _save(fig, "svg", bbox_inches="tight", transparent=True)


def pareto_png(front: list[dict[str, Any]], chosen: str, title: str) -> bytes:
    """Held-out R² (and training loss) against complexity; the chosen equation marked."""
    fig = _figure(6, 3.6)
    ax = fig.add_subplot()
    pts = sorted((e["complexity"], e.get("r2")) for e in front if e.get("r2") is not None)
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label="Pareto front")
    for e in front:
        if e.get("equation") == chosen and e.get("r2") is not None:
            ax.scatter([e["complexity"]], [e["r2"]], s=120, facecolors="none", edgecolors="C3", label="chosen")
    ax.set(xlabel="complexity", ylabel="held-out R²", title=title[:70])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, "png")
