"""Registering equations (no duplicates) and drawing them: rendered math (SVG) and Pareto fronts (PNG)."""

from __future__ import annotations

import io
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from l2o.expr import Equation
from services.api.db import EquationRow


def register(session: Session, eq: Equation, source_model: str = "", task: str = "",
             provenance: dict[str, Any] | None = None, pareto_front: list[dict[str, Any]] | None = None
             ) -> tuple[EquationRow, bool]:
    """The row of ``eq`` for this source and task, created if new; True when it was created."""
    text = eq.text
    row = session.scalar(select(EquationRow).where(EquationRow.text == text, EquationRow.source_model == source_model,
                                                   EquationRow.task == task))
    if row is not None:
        return row, False
    row = EquationRow(text=text, latex=eq.latex(), complexity=eq.complexity, r2=eq.to_dict()["r2"],
                      source_model=source_model, task=task, provenance=provenance or dict(eq.meta),
                      pareto_front=pareto_front or [])
    session.add(row)
    session.commit()
    return row, True


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=100)


def math_svg(latex: str) -> bytes:
    """The equation typeset by matplotlib's mathtext (no TeX, no network) as SVG."""
    plt, fig = _figure(8, 0.8)
    try:
        fig.text(0.01, 0.5, f"${latex}$", fontsize=15, va="center")
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", transparent=True)
    except ValueError:  # a construct mathtext cannot typeset: show the LaTeX source instead
        plt.close(fig)
        plt, fig = _figure(8, 0.8)
        fig.text(0.01, 0.5, latex, fontsize=11, va="center", family="monospace")
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", transparent=True)
    plt.close(fig)
    return buf.getvalue()


def pareto_png(front: list[dict[str, Any]], chosen: str, title: str) -> bytes:
    """Held-out R² (and training loss) against complexity; the chosen equation marked."""
    plt, fig = _figure(6, 3.6)
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
