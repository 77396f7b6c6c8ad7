"""``l2o`` is the science: it imports neither Ray nor the web stack, directly or through a dependency."""

import pathlib
import re
import subprocess
import sys

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
