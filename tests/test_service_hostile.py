"""The service under hostile input: nothing executed, nothing kept from a refused request, always answering.

A real uvicorn on 127.0.0.1. Where Ray must misbehave, ``RAY_ADDRESS`` points at a real socket that does
so — one that answers the version check and then never answers (or drops the connection), the faults a
dead or wedged dashboard shows, which a healthy Ray head cannot be made to show on demand.
"""

import importlib.util
import io
import json
import os
import socket
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from conftest import Service, free_port

pytestmark = [pytest.mark.slow]
TOKEN = "hostile-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class WedgedRay:
    """A dashboard address on 127.0.0.1: answers GET /api/version, then ``mode`` "hang" (never answer)
    or "drop" (close the connection) on everything else."""

    def __init__(self, mode: str):
        self.mode, self.port = mode, free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(128)
        self.held: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            request = conn.recv(65536)
        except OSError:
            return
        if request.startswith(b"GET /api/version"):
            body = json.dumps({"ray_version": "2.60.0", "version": "4", "ray_commit": "x"}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            conn.close()
        elif self.mode == "drop":
            conn.close()
        else:
            self.held.append(conn)  # accepted, never answered

    def close(self) -> None:
        self.stopped = True
        self.sock.close()
        for conn in self.held:
            conn.close()


def _start(tmp_path_factory, name: str, ray_url: str | None = None, **env) -> Service:
    storage = tmp_path_factory.mktemp(name)
    full = {**os.environ, "L2O_STORAGE": str(storage), "L2O_API_TOKEN": TOKEN, "L2O_MAX_UPLOAD_MB": "2",
            "L2O_SYNC_DISTILL_SECONDS": "20", "L2O_RAY_TIMEOUT_S": "2", "L2O_SYNC_DISTILL_ROWS": "500", **env}
    if ray_url:
        full["RAY_ADDRESS"] = ray_url
    else:
        full.pop("RAY_ADDRESS", None)
    return Service(full, Path(__file__).resolve().parents[1]).start()


@pytest.fixture(scope="module")
def wedged():
    ray = WedgedRay("hang")
    yield ray
    ray.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory, wedged):
    svc = _start(tmp_path_factory, "hostile", wedged.url)
    try:
        yield svc
    finally:
        svc.stop()


def _rss(svc: Service) -> int:
    import psutil

    return psutil.Process(svc.proc.pid).memory_info().rss


def _storage(svc: Service) -> Path:
    return Path(svc.env["L2O_STORAGE"])


def _files(svc: Service) -> set[str]:
    return {str(p.relative_to(_storage(svc))) for p in _storage(svc).rglob("*") if p.is_file()
            and "render" not in p.parts and not p.name.startswith("registry.db")}


def _healthz_ms(svc: Service) -> float:
    t0 = time.perf_counter()
    assert httpx.get(f"{svc.url}/healthz", timeout=10).status_code == 200
    return (time.perf_counter() - t0) * 1e3


# -- 1. stored code injection ------------------------------------------------------------------------
INJECTION = 'x"""\nimport pathlib; pathlib.Path("PWNED").write_text("1")\n"""'


def test_text_of_a_client_never_becomes_code(service, tmp_path):
    from l2o.expr import Equation, parse_equation
    from l2o.optim.export import export_optimizer

    with httpx.Client(base_url=service.url, timeout=60) as c:
        for field in ("source_model", "task"):
            r = c.post("/equations", json={"equation": "-0.01*mt_0", field: INJECTION}, headers=AUTH)
            assert r.status_code == 422, r.text
        r = c.post("/distill", headers=AUTH, files={"file": ("x.csv", b"a,y\n" + b"1,2\n" * 20, "text/csv")},
                   data={"task": INJECTION})
        assert r.status_code == 422
    # the generator itself: a value that closes the docstring stays text
    source = export_optimizer(Equation(parse_equation("-0.01*mt_0"), meta={"task": INJECTION, INJECTION: 1}),
                              name="Safe", title=INJECTION)
    path = tmp_path / "safe.py"
    path.write_text(source)
    os.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("safe", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert not (tmp_path / "PWNED").exists() and source.count('"""') == 4  # the two docstrings' quotes only


# -- 2. bodies: counted as they arrive, refused before auth and routing --------------------------------
def _stream(total: int, chunk: int = 1 << 20):
    sent = 0
    while sent < total:
        yield b"1" * chunk
        sent += chunk


def test_chunked_bodies_are_counted_and_unauthorised_ones_never_read(service):
    before = _rss(service)
    t0 = time.perf_counter()
    with httpx.Client(base_url=service.url, timeout=60) as c:
        for path in ("/equations", "/distill", "/jobs"):  # 300 MB each, chunked, no token
            try:
                r = c.post(path, content=_stream(300 << 20), headers={"Content-Type": "application/json"})
                assert r.status_code == 401, (path, r.status_code)
            except httpx.HTTPError:
                pass  # the server answered 401 and closed while the client was still sending
        r = c.post("/equations", content=_stream(30 << 20), headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 413
        r = c.post("/equations", content=b"{" * (3 << 20), headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 413
    assert time.perf_counter() - t0 < 60
    assert _rss(service) - before < 100 << 20
    assert not list((_storage(service) / "uploads").glob("*")) if (_storage(service) / "uploads").exists() else True


# -- 3. parser CPU --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "((((((9)**16)**16)**16)**16)**16)**16*mt_0",
    "max(" * 35 + "mt_0" + ", 1)" * 35,
    "pow(pow(pow(9, 16), 16), 16)*mt_0",
    "exp(exp(exp(exp(9))))*mt_0",
])
def test_parse_work_is_bounded(service, text):
    with httpx.Client(base_url=service.url, timeout=60) as c:
        t0 = time.perf_counter()
        r = c.post("/equations", json={"equation": text}, headers=AUTH)
        assert r.status_code == 422 and time.perf_counter() - t0 < 5, (r.status_code, r.text[:200])
    assert _healthz_ms(service) < 1000


def test_the_parser_refuses_quickly_where_sympy_would_not_return():
    from l2o.expr import EquationError, parse_equation

    for text in ["((((((9)**16)**16)**16)**16)**16)**16*mt_0", "1" * 400 + "*mt_0", "10**400*mt_0",
                 "max(" * 20 + "g_0" + ", 1)" * 20, "exp(1000)*g_0", "1e-300*1e-300*g_0"]:
        t0 = time.perf_counter()
        with pytest.raises(EquationError):
            parse_equation(text)
        assert time.perf_counter() - t0 < 0.5, text[:40]


# -- 4. uploads that expand -----------------------------------------------------------------------------
def _bombs():
    rows = 15_000_000  # 240 MB of zeros in each file, a few hundred kB as sent
    parquet = pd.DataFrame({"x0": np.zeros(rows), "y": np.zeros(rows)}).to_parquet(compression="zstd")
    npz = io.BytesIO()
    np.savez_compressed(npz, X=np.zeros((rows, 1)), y=np.zeros(rows))
    csv = ",".join(f"c{i}" for i in range(150_000)).encode() + b",y\n" + b"1," * 150_000 + b"1\n"
    return [("zeros.parquet", parquet), ("zeros.npz", npz.getvalue()), ("wide.csv", csv)]


@pytest.mark.parametrize("name, data", _bombs())
def test_uploads_are_bounded_once_decompressed_and_parsed_off_the_loop(service, name, data):
    assert len(data) < 2 << 20  # each fits the upload limit as sent
    before, files = _rss(service), _files(service)
    health = []
    with httpx.Client(base_url=service.url, timeout=60) as c:
        with ThreadPoolExecutor(2) as pool:
            fut = pool.submit(c.post, "/distill", headers=AUTH, files={"file": (name, data, "application/octet-stream")})
            while not fut.done():
                health.append(_healthz_ms(service))
            r = fut.result()
    assert r.status_code in (413, 422), (r.status_code, r.text[:200])
    assert _rss(service) - before < 200 << 20 and _files(service) == files
    assert max(health, default=0) < 1000


# -- 5. Ray calls have a timeout ------------------------------------------------------------------------
def test_a_wedged_ray_does_not_hang_the_service(service):
    from sqlalchemy import create_engine, text

    db = create_engine(f"sqlite:///{_storage(service) / 'service' / 'registry.db'}")
    with db.begin() as conn:
        conn.execute(text("INSERT INTO jobs (id, kind, config, status, created) VALUES "
                          "('raysubmit_gone', 'meta_train', '{}', 'RUNNING', '2026-01-01 00:00:00')"))
    with httpx.Client(base_url=service.url, timeout=60) as c:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(50) as pool:  # more requests than the service has worker threads
            answers = list(pool.map(lambda _: c.get("/jobs"), range(60)))
            health = [_healthz_ms(service) for _ in range(5)]
        assert all(r.status_code == 200 for r in answers)
        assert {j["status"] for j in answers[0].json() if j["id"] == "raysubmit_gone"} == {"UNKNOWN"}
        assert time.perf_counter() - t0 < 120 and max(health) < 1000
        one = c.get("/jobs/raysubmit_gone")
        assert one.status_code == 200 and one.json()["status"] == "UNKNOWN"
        assert c.post("/jobs", json={"kind": "meta_train", "smoke": True}, headers=AUTH).status_code == 503


# -- 6. renders are cached ---------------------------------------------------------------------------------
def test_math_is_rendered_once_per_equation(service):
    terms = " + ".join(f"{(i + 1) / 1000}*tanh(mt_0/{i + 1})" for i in range(150))
    with httpx.Client(base_url=service.url, timeout=120) as c:
        r = c.post("/equations", json={"equation": terms, "source_model": "render"}, headers=AUTH)
        assert r.status_code == 201, r.text
        eid = r.json()["id"]
        t0 = time.perf_counter()
        first = c.get(f"/equations/{eid}/math.svg")
        t1 = time.perf_counter()
        second = c.get(f"/equations/{eid}/math.svg")
        t2 = time.perf_counter()
    assert first.status_code == second.status_code == 200 and first.content == second.content
    assert t1 - t0 < 10 and t2 - t1 < 0.5


# -- 7. no 500s ------------------------------------------------------------------------------------------
def test_racing_registrations_get_one_row(service):
    with httpx.Client(base_url=service.url, timeout=60) as c:
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: c.post("/equations", json={"equation": "-0.003*gt_0 + 0.001*mt_1",
                                                                        "source_model": "race"}, headers=AUTH),
                                    range(60)))
    assert {r.status_code for r in answers} <= {200, 201} and len({r.json()["id"] for r in answers}) == 1


@pytest.mark.parametrize("body", [
    {"equation": "1" * 400 + "*mt_0"},
    {"equation": "mt_0 + " + "9" * 4400},
    {"equation": "-0.01*mt_0", "r2": 2.0},
])
def test_bad_equations_are_4xx_with_a_message(service, body):
    with httpx.Client(base_url=service.url, timeout=60) as c:
        r = c.post("/equations", json=body, headers=AUTH)
    assert 400 <= r.status_code < 500 and r.json()["detail"], r.text[:200]


def test_bad_settings_of_a_stored_dataset_are_422(service):
    folder = _storage(service) / "datasets" / "stored"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"rows": 10, "feature_columns": ["mt_0"]}))
    with httpx.Client(base_url=service.url, timeout=60) as c:
        for settings in ({"operators": [1, 2]}, {"max_complexity": [1, "x"]}, {"population": True}):
            r = c.post("/distill", headers=AUTH, data={"dataset_id": "stored", "settings": json.dumps(settings)})
            assert r.status_code == 422, (settings, r.status_code, r.text[:200])


# -- 8. nothing left behind -------------------------------------------------------------------------------
def test_a_large_upload_refused_by_ray_leaves_nothing(tmp_path_factory):
    dropping = WedgedRay("drop")
    svc = _start(tmp_path_factory, "dropping", dropping.url)
    try:
        rows = pd.DataFrame(np.random.default_rng(0).normal(size=(800, 2)), columns=["mt_0", "y"])
        with httpx.Client(base_url=svc.url, timeout=60) as c:
            files = _files(svc)
            r = c.post("/distill", headers=AUTH, files={"file": ("rows.csv", rows.to_csv(index=False), "text/csv")})
            assert r.status_code == 503, r.text[:300]
            assert c.post("/jobs", json={"kind": "meta_train", "smoke": True}, headers=AUTH).status_code == 503
            assert _files(svc) == files  # no upload, no job config
    finally:
        svc.stop()
        dropping.close()


# -- 9. the token file ------------------------------------------------------------------------------------
def test_the_generated_token_is_private_from_its_creation_and_one_for_all_workers(tmp_path):
    from services.api.settings import Settings

    settings = [Settings(storage=str(tmp_path), api_token=None) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda s: s.token(), settings))
    path = tmp_path / "service" / "api_token"
    assert len(tokens) == 1 and len(next(iter(tokens))) > 30
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".api_token")]


# -- 10. exports of every registered rule work ---------------------------------------------------------------
@pytest.mark.parametrize("equation", [
    "sqrt(2)*mt_0 - 0.001*exp(-3*step_0)*gt_0",
    " + ".join(f"({(i + 1) / 1000}*tanh(mt_0/{i + 1}) + {(i + 2) / 1000}*g_1)" for i in range(75)),
])
def test_registered_rules_export_to_working_optimizers(service, tmp_path, equation):
    import torch

    with httpx.Client(base_url=service.url, timeout=120) as c:
        r = c.post("/equations", json={"equation": equation, "source_model": "export"}, headers=AUTH)
        assert r.status_code in (200, 201), r.text
        code = c.get(f"/equations/{r.json()['id']}/optimizer.py")
    assert code.status_code == 200, code.text[:300]
    path = tmp_path / "rule.py"
    path.write_text(code.text)
    spec = importlib.util.spec_from_file_location("rule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    p = torch.nn.Parameter(torch.ones(4))
    opt = getattr(module, f"Equation{r.json()['id']}Optimizer")([p])
    for _ in range(3):
        p.grad = torch.full((4,), 0.5)
        opt.step()
    assert torch.isfinite(p).all() and not torch.equal(p, torch.ones(4))
