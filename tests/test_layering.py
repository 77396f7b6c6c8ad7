"""``l2o`` is the science: it imports neither Ray nor the web stack, and its packages form no import cycle."""

import pathlib
import re
import subprocess
import sys

import pytest

FORBIDDEN = ("ray", "fastapi", "starlette", "uvicorn")


def test_no_forbidden_import_statement():
    root = pathlib.Path(__file__).resolve().parents[1] / "l2o"
    pattern = re.compile(rf"^\s*(import|from)\s+({'|'.join(FORBIDDEN)})\b", re.M)
    offenders = [str(p) for p in root.rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders


def test_importing_l2o_loads_neither_ray_nor_fastapi():
    code = ("import sys, pkgutil, importlib, l2o\n"
            "for m in pkgutil.walk_packages(l2o.__path__, 'l2o.'):\n"
            "    importlib.import_module(m.name)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _package_graph() -> dict[str, set[str]]:
    """Edges between l2o's packages (top-level modules count as packages), from every import statement,
    those inside functions included."""
    import ast

    root = pathlib.Path(__file__).resolve().parents[1] / "l2o"
    edges: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        source = parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                if name.startswith("l2o."):
                    target = name.split(".")[1]
                    if target != source:
                        edges.setdefault(source, set()).add(target)
    return edges


def test_packages_import_each_other_without_cycles():
    edges = _package_graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            assert state.get(nxt) != "open", f"import cycle: {' -> '.join(path + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    # the leaves stay leaves; checkpoints know learned optimizers through their interface only
    assert not edges.get("expr") and edges.get("tasks", set()) <= {"config"}
    assert "learned" not in edges.get("meta", set())


def test_the_graph_finds_a_cycle_when_there_is_one(monkeypatch):
    """The check above would see a cycle made by an import inside a function."""
    import ast

    real = ast.parse

    def parse(text, *a, **k):
        tree = real(text, *a, **k)
        if "class Tape:" in text:
            tree.body.append(real("def f():\n    import l2o.features\n").body[0])
        return tree

    monkeypatch.setattr(ast, "parse", parse)
    with pytest.raises(AssertionError, match="import cycle"):
        test_packages_import_each_other_without_cycles()
