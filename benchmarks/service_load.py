"""The REST service under load: concurrent clients mixing reads, registrations, downloads and small
synchronous /distill uploads, with /healthz probed throughout.

    python benchmarks/service_load.py [--clients 50] [--seconds 60] [--url URL --token T]

Without ``--url`` it starts ``uvicorn services.api.main:app`` on 127.0.0.1 over a fresh storage folder
(no Ray: job endpoints are not part of the mix) and stops it at the end. Each client loops over a
weighted mix of requests for the given time; a probe in a process of its own asks /healthz every 100 ms.
Prints p50/p99 latency per endpoint, throughput and status counts; the last line is one JSON object with
``requests``, ``errors_5xx``, ``errors_4xx``, ``throughput_rps`` and ``healthz_p99_ms``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx

from l2o import machine

ROOT = Path(__file__).resolve().parents[1]
MIX = [("list", 30), ("detail", 20), ("register", 15), ("optimizer.py", 15), ("math.svg", 10),
       ("distill", 5), ("healthz", 5)]
FEATURES = ["mt_0", "gt_0", "mt_1", "g_1", "m_p3_0", "mt_ema90_0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rule(rng: random.Random) -> str:
    terms = [f"{rng.uniform(-1e-2, 1e-2):.6f}*tanh({rng.choice(FEATURES)}/{rng.uniform(0.1, 2):.3f})"
             for _ in range(rng.randint(1, 4))]
    return " + ".join(terms)


def _csv(rng: random.Random, rows: int = 200) -> bytes:
    lines = ["mt_0,gt_0,y"]
    for _ in range(rows):
        a, b = rng.gauss(0, 1), rng.gauss(0, 1)
        lines.append(f"{a:.6f},{b:.6f},{-0.3 * a + 0.1 * b:.6f}")
    return ("\n".join(lines) + "\n").encode()


def client(url: str, token: str, until: float, seed: int, ids: list[int], results, lock) -> None:
    rng = random.Random(seed)
    auth = {"Authorization": f"Bearer {token}"}
    names, weights = zip(*MIX)
    with httpx.Client(base_url=url, timeout=120) as c:
        while time.monotonic() < until:
            kind = rng.choices(names, weights)[0]
            eid = rng.choice(ids)
            t0 = time.perf_counter()
            try:
                if kind == "list":
                    r = c.get("/equations", params={"limit": 50, "sort": rng.choice(["r2", "complexity", "created"])})
                elif kind == "detail":
                    r = c.get(f"/equations/{eid}")
                elif kind == "register":
                    r = c.post("/equations", json={"equation": _rule(rng), "source_model": "load"}, headers=auth)
                    if r.status_code in (200, 201):
                        with lock:
                            ids.append(r.json()["id"])
                elif kind == "optimizer.py":
                    r = c.get(f"/equations/{eid}/optimizer.py")
                elif kind == "math.svg":
                    r = c.get(f"/equations/{eid}/math.svg")
                elif kind == "distill":
                    r = c.post("/distill", headers=auth, files={"file": ("rows.csv", _csv(rng), "text/csv")},
                               data={"settings": json.dumps({"generations": 5, "population": 50,
                                                             "max_complexity": 8, "time_limit": 5})})
                else:
                    r = c.get("/healthz")
                status = r.status_code
            except httpx.HTTPError as err:
                status = f"error {type(err).__name__}"
            with lock:
                results[kind].append((time.perf_counter() - t0, status))


def probe(url: str, until: float, out) -> None:
    """In a process of its own, so its timings do not include waits for the clients' interpreter lock."""
    with httpx.Client(base_url=url, timeout=30) as c:
        while time.monotonic() < until:
            t0 = time.perf_counter()
            try:
                ok = c.get("/healthz").status_code == 200
            except httpx.HTTPError:
                ok = False
            out.append((time.perf_counter() - t0) * 1e3 if ok else float("inf"))
            time.sleep(0.1)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def start_service(storage: str, token: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "L2O_STORAGE": storage, "L2O_API_TOKEN": token}
    env.pop("RAY_ADDRESS", None)
    log = open(Path(storage) / "uvicorn.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "services.api.main:app", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("the service did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients (default: 50)")
    ap.add_argument("--seconds", type=float, default=60, help="duration of the load (default: 60)")
    ap.add_argument("--url", default=None, help="a running service (default: start one)")
    ap.add_argument("--token", default="load-token", help="its bearer token")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", default=None, help="keep the started service's log at this path")
    args = ap.parse_args()
    print(machine.summary())
    proc, tmp = None, None
    url = args.url
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="l2o-load-")
        proc, url = start_service(tmp.name, args.token)
    try:
        rng = random.Random(args.seed)
        ids = []
        with httpx.Client(base_url=url, timeout=60) as c:
            for _ in range(10):
                r = c.post("/equations", json={"equation": _rule(rng), "source_model": "load"},
                           headers={"Authorization": f"Bearer {args.token}"})
                r.raise_for_status()
                ids.append(r.json()["id"])
        results: dict[str, list] = defaultdict(list)
        lock, manager = threading.Lock(), multiprocessing.get_context("spawn").Manager()
        shared = manager.list()
        t0 = time.monotonic()
        until = t0 + args.seconds
        threads = [threading.Thread(target=client, args=(url, args.token, until, args.seed * 1000 + k, ids, results,
                                                         lock)) for k in range(args.clients)]
        prober = multiprocessing.get_context("spawn").Process(target=probe, args=(url, until, shared))
        prober.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        prober.join()
        elapsed = time.monotonic() - t0
        health = list(shared)
        manager.shutdown()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
            if args.log:
                Path(args.log).write_bytes((Path(tmp.name) / "uvicorn.log").read_bytes())
            tmp.cleanup()
    total = sum(len(v) for v in results.values())
    counts = {k: defaultdict(int) for k in results}
    for kind, rows in results.items():
        for _, status in rows:
            counts[kind][str(status)] += 1
    five = sum(n for c in counts.values() for s, n in c.items() if s.startswith("5") or s.startswith("error"))
    four = sum(n for c in counts.values() for s, n in c.items() if s.startswith("4"))
    print(f"{args.clients} clients for {elapsed:.0f} s against {url}")
    print(f"{'endpoint':14s} {'requests':>9s} {'p50 ms':>9s} {'p99 ms':>9s}  statuses")
    per = {}
    for kind, _ in MIX:
        rows = results.get(kind, [])
        lat = [s * 1e3 for s, _ in rows]
        per[kind] = {"requests": len(rows), "p50_ms": round(_pct(lat, 0.5), 1), "p99_ms": round(_pct(lat, 0.99), 1),
                     "statuses": dict(counts.get(kind, {}))}
        print(f"{kind:14s} {len(rows):9d} {per[kind]['p50_ms']:9.1f} {per[kind]['p99_ms']:9.1f}  "
              f"{dict(counts.get(kind, {}))}")
    hp50, hp99 = _pct(health, 0.5), _pct(health, 0.99)
    print(f"throughput {total / elapsed:.1f} requests/s; 5xx and transport errors {five}, 4xx {four}; "
          f"/healthz probe ({len(health)} probes) p50 {hp50:.1f} ms, p99 {hp99:.1f} ms, "
          f"max {max(health, default=float('nan')):.1f} ms")
    print(json.dumps({"machine": machine.describe(),
                      "clients": args.clients, "seconds": round(elapsed, 1), "requests": total,
                      "throughput_rps": round(total / elapsed, 1), "errors_5xx": five, "errors_4xx": four,
                      "healthz_p50_ms": round(hp50, 1), "healthz_p99_ms": round(hp99, 1),
                      "healthz_probes": len(health), "per_endpoint": per}))


if __name__ == "__main__":
    main()
