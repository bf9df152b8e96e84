"""deploy/ for the image that was signed: `z4 image deploy` puts the verified statement's digest in the
chart's values and the statement itself in the ConfigMap every factory pod mounts; the launcher's rule
then runs that digest and refuses any other. A statement that does not verify writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from z4_assets.core.errors import Z4Error
from z4_assets.core.packaging import IMAGE_EVIDENCE
from z4_assets.image._deploy import CONFIGMAP, MOUNT, PUBKEY_FILE
from z4_assets_tests.k8s_api import DIGEST_IMAGE, kubernetes_validate, signed_image_env

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "z4_assets.cli", "image", "deploy"]


def _deploy(env: dict, out: Path, *extra: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("Z4_")}
    return subprocess.run([*CLI, "--out", str(out), *extra], cwd=ROOT, capture_output=True, text=True,
                          env={**clean, "PYTHONPATH": str(ROOT), **env}, timeout=120)


def _mounted(cm: dict, folder: Path) -> Path:
    """The ConfigMap's data as Kubernetes mounts it: one file per key."""
    folder.mkdir(parents=True)
    for name, text in cm["data"].items():
        (folder / name).write_text(text)
    return folder


def test_deploy_pins_the_signed_digest_and_the_launcher_runs_only_it(tmp_path, monkeypatch):
    from z4_assets.k8s.signed import require_signed_digest

    env = signed_image_env(tmp_path)
    proc = _deploy(env, tmp_path / "out", "--repository", "registry.bank.example/z4/train")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    digest = DIGEST_IMAGE.split("@")[1]
    values = yaml.safe_load((tmp_path / "out" / "values.yaml").read_text())
    image = values["dagsterWebserver"]["image"]
    assert (image["repository"], image["digest"]) == ("registry.bank.example/z4/train", digest)
    # the anchor carries it to the daemon (the launcher) and the code location (runs and steps)
    assert values["dagsterDaemon"]["image"] == image
    assert values["dagster-user-deployments"]["deployments"][0]["image"] == image
    cm_path = tmp_path / "out" / f"{CONFIGMAP}.yaml"
    check = kubernetes_validate([cm_path])
    assert check.returncode == 0, check.stdout + check.stderr
    cm = yaml.safe_load(cm_path.read_text())
    assert cm["data"][PUBKEY_FILE] == Path(env["Z4_SIGNING_PUBKEY"]).read_text()
    assert "PRIVATE" not in cm_path.read_text()
    # in the pod: the ConfigMap mounted where factory-config.yaml points the factory
    mounted = _mounted(cm, tmp_path / "etc-z4-image")
    monkeypatch.setenv("Z4_IMAGE_EVIDENCE", str(mounted))
    monkeypatch.setenv("Z4_SIGNING_PUBKEY", str(mounted / PUBKEY_FILE))
    pinned = f"{image['repository']}@{image['digest']}"
    assert require_signed_digest(pinned, "test") == pinned
    with pytest.raises(Z4Error, match="not the one the factory's signed image statement names"):
        require_signed_digest(image["repository"] + "@sha256:" + "cd" * 32, "test")


def test_every_factory_pod_mounts_the_evidence_where_the_factory_looks():
    env = {d["metadata"]["name"]: d for d in yaml.safe_load_all((ROOT / "deploy/k8s/factory-config.yaml").read_text())
           if d}["z4-factory-env"]["data"]
    assert env["Z4_IMAGE_EVIDENCE"] == MOUNT and env["Z4_SIGNING_PUBKEY"] == f"{MOUNT}/{PUBKEY_FILE}"
    launcher = yaml.safe_load((ROOT / "deploy/dagster.yaml").read_text())["run_launcher"]["config"]
    values = yaml.safe_load((ROOT / "deploy/helm/values.yaml").read_text())
    for volumes, mounts in ((launcher["volumes"], launcher["volume_mounts"]),
                            (values["dagsterDaemon"]["volumes"], values["dagsterDaemon"]["volumeMounts"])):
        name = next(v["name"] for v in volumes if v.get("configMap", {}).get("name") == CONFIGMAP)
        assert {"name": name, "mountPath": MOUNT, "readOnly": True} in mounts


def test_a_statement_that_does_not_verify_writes_nothing(tmp_path):
    env = signed_image_env(tmp_path)
    bundle = Path(env["Z4_IMAGE_EVIDENCE"]) / IMAGE_EVIDENCE["bundle"]
    doc = json.loads(bundle.read_text())
    other = signed_image_env(tmp_path / "other", DIGEST_IMAGE.split("@")[0] + "@sha256:" + "cd" * 32)
    doc["dsseEnvelope"]["payload"] = json.loads(
        (Path(other["Z4_IMAGE_EVIDENCE"]) / IMAGE_EVIDENCE["bundle"]).read_text())["dsseEnvelope"]["payload"]
    bundle.write_text(json.dumps(doc))  # another digest's statement under this key's signature
    proc = _deploy(env, tmp_path / "out")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    proc = _deploy({**env, "Z4_SIGNING_PUBKEY": other["Z4_SIGNING_PUBKEY"]}, tmp_path / "out2")
    assert proc.returncode != 0 and not (tmp_path / "out2").exists()
