"""``l2o.machine``: what the benchmarks say about the machine they ran on."""

import json
import os

import torch

from l2o import machine


def test_the_machine_is_described_from_what_the_os_reports():
    d = machine.describe()
    assert d["cpus"] == len(os.sched_getaffinity(0))
    assert d["torch_threads"] == torch.get_num_threads()
    assert set(d["vector"]) <= machine.flags() and all(f in machine.VECTOR_FLAGS for f in d["vector"])
    if os.path.isdir("/sys/devices/system/cpu/cpu0/cache"):
        assert d["caches"] and all(isinstance(v, int) and v >= 1024 for v in d["caches"].values())
        assert "L1d" in d["caches"] and d["caches"]["L1d"] <= d["caches"].get("L2", float("inf"))
    json.dumps(d)  # it goes into the benchmarks' JSON lines
    line = machine.summary()
    assert line.startswith("machine: ") and d["cpu"] in line and "\n" not in line


def test_bandwidth_and_product_rate_are_measured():
    bandwidth, rate = machine.memory_bandwidth(mib=32, reps=3), machine.matmul_flops(n=256, reps=3)
    assert 1e8 < bandwidth < 1e13 and 1e8 < rate < 1e14
