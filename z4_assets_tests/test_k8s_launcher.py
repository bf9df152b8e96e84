"""The run pod through the real launch path: `dagster job launch` with deploy/dagster.yaml's run
launcher; its Job validated offline, locked down by deploy/steps.yaml, and refused when tagged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import yaml

from z4_assets.core.k8s_policy import load_steps_policy
from z4_assets.core.z3 import add_snapshot, list_snapshots
from z4_assets.k8s.steps import DEFAULT_STEPS
from z4_assets_tests.conftest import DATASET, SAMPLE_CONTRACT, SAMPLE_CSV
from z4_assets_tests.k8s_api import DIGEST_IMAGE, FakeKubeAPI, kubernetes_validate, signed_image_env
from z4_assets_tests.test_k8s_specs import instance_home

ROOT = Path(__file__).resolve().parents[1]


def launch(home: Path, **env) -> subprocess.CompletedProcess:
    """CI's line with `launch` for `execute`: a snapshot is registered, and `z4 snapshot tags` names
    its partition (adding it to the instance) for `dagster job launch --tags`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("Z4_", "MLFLOW_", "DAGSTER_"))}
    base.update(DAGSTER_HOME=str(home), PYTHONPATH=str(ROOT), Z4_EXECUTOR="k8s",
                Z4_Z3_ROOT=str(home / "z3"), Z4_FACTORY_ROOT=str(home / "factory"), **signed_image_env(home), **env)
    pd.read_csv(SAMPLE_CSV, nrows=500).to_parquet(home / "data.parquet", index=False)
    add_snapshot(home / "z3", DATASET, SAMPLE_CONTRACT, home / "data.parquet")
    tags = subprocess.run([sys.executable, "-m", "z4_assets.cli", "snapshot", "tags"], cwd=home, env=base,
                          capture_output=True, text=True, timeout=300)
    assert tags.returncode == 0, tags.stderr[-2000:]
    return subprocess.run([sys.executable, "-m", "dagster", "job", "launch", "-m", "z4_assets.definitions",
                           "-j", "model_factory", "--tags", tags.stdout.strip()], cwd=home, env=base,
                          capture_output=True, text=True, timeout=300)


def test_the_run_pod_is_created_locked_down_and_valid(tmp_path):
    with FakeKubeAPI(status=201) as api:
        proc = launch(instance_home(tmp_path, api), DAGSTER_CURRENT_IMAGE=DIGEST_IMAGE)
        jobs = api.jobs()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (job,) = jobs
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    policy = load_steps_policy(DEFAULT_STEPS)
    assert c["image"] == DIGEST_IMAGE  # the code location's image, as the chart sets it
    assert c["args"][:3] == ["dagster", "api", "execute_run"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is True  # the k8s executor creates the step Jobs
    assert c["resources"]["limits"] == {k: str(v) for k, v in policy.run_worker.limits.items()}
    assert job["spec"]["ttlSecondsAfterFinished"] == policy.ttl_seconds_after_finished
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["z4.io/workload"] == "factory" and labels["app.kubernetes.io/component"] == "run_worker"
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/tmp", "/data", "/z3", "/etc/z4/steps", "/opt/dagster/dagster_home/storage"} <= mounts
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        (run,) = instance.get_runs()
        (ref,) = list_snapshots(tmp_path / "z3")
        assert run.tags["dagster/partition"] == ref.label  # the pod runs the partition it was launched for
        assert labels["dagster/run-id"] == run.run_id
    out = tmp_path / "run-worker.yaml"
    out.write_text(yaml.safe_dump(job))
    check = kubernetes_validate([out])
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_tagged_code_location_image_is_refused_before_the_run_job(tmp_path):
    with FakeKubeAPI(status=201) as api:
        home = instance_home(tmp_path, api)
        proc = launch(home, DAGSTER_CURRENT_IMAGE="registry.example.com/z4/z4-model-factory:latest")
        posted = list(api.posted)
    logs = proc.stdout + proc.stderr
    assert posted == []
    assert "image 'registry.example.com/z4/z4-model-factory:latest' is refused: it uses the mutable tag " \
           "'latest'; images must be pinned by digest" in logs, logs[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.FAILURE


def test_a_tagged_job_image_in_the_launcher_config_fails_when_the_instance_loads(tmp_path):
    with FakeKubeAPI(status=201) as api:
        home = instance_home(tmp_path, api)
        doc = yaml.safe_load((home / "dagster.yaml").read_text())
        doc["run_launcher"]["config"]["job_image"] = "registry.example.com/z4/z4-model-factory:v3"
        (home / "dagster.yaml").write_text(yaml.safe_dump(doc))
        proc = launch(home, DAGSTER_CURRENT_IMAGE=DIGEST_IMAGE)
        posted = list(api.posted)
    logs = proc.stdout + proc.stderr
    assert proc.returncode != 0 and posted == []
    assert "run_launcher.config.job_image: image 'registry.example.com/z4/z4-model-factory:v3' is refused" in logs


def test_a_digest_the_signed_image_statement_does_not_name_is_refused(tmp_path):
    other = DIGEST_IMAGE.split("@")[0] + "@sha256:" + "cd" * 32  # pinned, but not the signed image
    with FakeKubeAPI(status=201) as api:
        home = instance_home(tmp_path, api)
        proc = launch(home, DAGSTER_CURRENT_IMAGE=other)
        posted = list(api.posted)
    logs = proc.stdout + proc.stderr
    assert posted == []
    assert "its digest is not the one the factory's signed image statement names" in logs, logs[-3000:]
