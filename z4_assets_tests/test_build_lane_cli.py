"""`z4 ci-gate` end to end, the SCA verdicts (offline is never a pass), the SBOM and provenance."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from z4_assets.buildlane.lockcheck import RUNTIME_LOCK, TEST_LOCK, parse_lock
from z4_assets.buildlane.result import FAIL, PASS, WARN
from z4_assets.buildlane.runner import lock_drift
from z4_assets.buildlane.sca import NOT_AUDITED, audit_input, classify, run_pip_audit
from z4_assets.core.errors import Z4Error

ROOT = Path(__file__).resolve().parents[1]
GATES = ["lock", "ruff", "imports", "bandit", "secrets", "dockerfile", "pip-audit", "sbom", "licences"]


def _z4(*args: str, cwd: Path = ROOT, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "z4_assets.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )


@pytest.fixture(scope="module")
def lane(tmp_path_factory):
    """One real run of the whole lane over this checkout, in development mode."""
    out = tmp_path_factory.mktemp("ci-gate")
    proc = _z4("ci-gate", "--mode", "development", "--out", str(out))
    return proc, out


def test_ci_gate_runs_every_gate_and_prints_the_table(lane):
    proc, out = lane
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert [g["name"] for g in report["gates"]] == GATES
    assert report["mode"] == "development" and report["passed"] is True
    for gate in report["gates"]:
        assert f"\n{gate['name']:<11} {gate['status']:<6}" in proc.stdout
    assert "ci-gate: PASS in development mode" in proc.stdout


def test_an_unaudited_environment_is_never_reported_as_a_pass(lane):
    proc, out = lane
    audit = next(
        g for g in json.loads((out / "report.json").read_text())["gates"] if g["name"] == "pip-audit"
    )
    if audit["status"] == PASS:  # a reachable vulnerability database: audited for real
        assert "audited, no known vulnerability" in audit["summary"]
    else:  # this machine: no vulnerability data reachable
        assert audit["status"] == WARN and audit["summary"].startswith(NOT_AUDITED)
        assert f"!!! PIP-AUDIT: {NOT_AUDITED.upper()}" in proc.stdout.upper()
        assert "release mode (--mode release or Z4_LANE_MODE=release) would block" in proc.stdout


def test_the_sbom_artifact_is_reproducible_and_reusable(lane, tmp_path):
    from z4_assets.core.sbom import generate_sbom, sbom_components

    _, out = lane
    artifact = out / "sbom.cdx.json"
    doc = json.loads(artifact.read_text())
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    assert "serialNumber" not in doc and "timestamp" not in doc["metadata"]  # reproducible output
    assert sbom_components(artifact)["torch"] == "2.13.0+cpu"
    digest = generate_sbom(tmp_path / "again" / "sbom.json")  # what the signed package calls
    assert digest == hashlib.sha256((tmp_path / "again" / "sbom.json").read_bytes()).hexdigest()
    assert digest == hashlib.sha256(artifact.read_bytes()).hexdigest()  # same environment, same digest


def test_the_sbom_gate_fails_when_the_environment_is_not_the_locked_one(lane):
    from z4_assets.core.sbom import sbom_components

    components = sbom_components(lane[1] / "sbom.cdx.json")
    pins, _ = parse_lock(ROOT / RUNTIME_LOCK)
    assert lock_drift(components, pins) == []
    components["pandas"] = "2.2.0"
    del components["numpy"]
    assert lock_drift(components, pins) == [
        f"numpy: locked {pins['numpy'].version}, installed absent",
        "pandas: locked 2.3.3, installed 2.2.0",
    ]


def test_ci_gate_exits_1_and_names_the_line_on_an_unpinned_dependency(tmp_path):
    for name in ("pyproject.toml", RUNTIME_LOCK, TEST_LOCK):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    with open(tmp_path / TEST_LOCK, "a", encoding="utf-8") as f:
        f.write("rich\n")
    proc = _z4("ci-gate", "--only", "lock", "--root", str(tmp_path))
    assert proc.returncode == 1
    assert "\nlock        FAIL" in proc.stdout
    assert "requirements-test.lock:" in proc.stdout and "rich is not pinned with ==" in proc.stdout
    assert "ci-gate: FAIL" in proc.stdout


def test_ci_gate_rejects_an_unknown_mode_or_gate_in_one_line():
    proc = _z4("ci-gate", "--only", "lock", Z4_LANE_MODE="yolo")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "Z4_LANE_MODE='yolo'" in proc.stderr
    proc = _z4("ci-gate", "--only", "nope")
    assert proc.returncode == 2 and "unknown gate(s) nope" in proc.stderr


# -- SCA verdicts ---------------------------------------------------------------------------------


def test_pip_audit_with_no_reachable_database_warns_in_development_and_blocks_in_release(tmp_path):
    # A proxy on a closed loopback port: the vulnerability service cannot be reached at all.
    env = {
        **os.environ,
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "XDG_CACHE_HOME": str(tmp_path),
        "NO_PROXY": "",
    }
    dev = run_pip_audit(ROOT, "development", env=env, timeout=120)
    release = run_pip_audit(ROOT, "release", env=env, timeout=120)
    assert dev.status == WARN and release.status == FAIL
    assert dev.summary.startswith(NOT_AUDITED) and release.summary.startswith(NOT_AUDITED)
    assert "blocks in release mode" in release.summary
    assert "unreachable" in dev.summary


# pip-audit's JSON as it writes it (`-f json`). Recorded shapes, not a live database: no vulnerability
# database is reachable from this machine, so a real finding cannot be produced here.
VULN_REPORT = {
    "dependencies": [
        {"name": "pandas", "version": "2.3.3", "vulns": []},
        {
            "name": "mlflow",
            "version": "3.17.2",
            "vulns": [
                {
                    "id": "PYSEC-0000-0",
                    "fix_versions": ["3.17.3"],
                    "aliases": ["CVE-0000-0000"],
                    "description": "x",
                }
            ],
        },
    ],
    "fixes": [],
}
CLEAN_REPORT = {"dependencies": [{"name": "pandas", "version": "2.3.3", "vulns": []}], "fixes": []}


@pytest.mark.parametrize("mode", ["development", "release"])
def test_a_known_vulnerability_fails_in_every_mode(mode):
    result = classify(1, VULN_REPORT, "", mode)
    assert result.status == FAIL
    assert result.details == ["mlflow==3.17.2: PYSEC-0000-0 (fixed in 3.17.3)"]


def test_audit_verdicts_pass_only_a_clean_complete_audit():
    assert classify(0, CLEAN_REPORT, "", "release").status == PASS
    skipped = {"dependencies": [{"name": "torch", "version": "2.13.0", "skip_reason": "not on PyPI"}]}
    assert classify(1, skipped, "", "development").status == WARN
    assert classify(1, skipped, "", "release").status == FAIL
    broken = classify(2, None, "Traceback ... KeyError: 'x'", "development")
    assert broken.status == FAIL and broken.summary.startswith("pip-audit failed")


def test_audit_input_covers_both_locks_with_torch_as_its_upstream_release():
    lines = audit_input(ROOT).splitlines()
    assert "torch==2.13.0" in lines and not any("+cpu" in ln for ln in lines)
    assert "bandit==1.9.4" in lines and "pandas==2.3.3" in lines
    assert all(ln.count("==") == 1 for ln in lines)


# -- provenance, pre-commit -----------------------------------------------------------------------


def test_container_digest_comes_from_the_deployer(monkeypatch):
    from z4_assets.core.provenance import container_digest, environment_lock

    digest = "sha256:" + "ab" * 32
    monkeypatch.delenv("Z4_CONTAINER_DIGEST", raising=False)
    assert container_digest().startswith("none: not running in the z4 training image")
    monkeypatch.setenv("Z4_CONTAINER_DIGEST", f"registry.example/z4-step@{digest}")
    assert container_digest() == digest
    monkeypatch.setenv("Z4_CONTAINER_DIGEST", "z4-step:latest")
    with pytest.raises(Z4Error, match="Z4_CONTAINER_DIGEST"):
        container_digest()
    monkeypatch.delenv("Z4_ENV_LOCK", raising=False)
    env = environment_lock()
    assert env["env_lock_sha256"] == hashlib.sha256((ROOT / RUNTIME_LOCK).read_bytes()).hexdigest()


def test_pre_commit_config_is_valid_and_runs_lint_format_secrets_and_bandit():
    proc = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hooks = {
        h["id"]: h
        for r in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
        for h in r["hooks"]
    }
    assert {"ruff-lint", "ruff-format", "detect-secrets", "bandit"} <= set(hooks)
    assert ".secrets.baseline" in hooks["detect-secrets"]["entry"]
    assert ".ci/bandit.yaml" in hooks["bandit"]["entry"]


def test_ci_runs_the_readmes_locked_test_command_with_the_lane_before_the_tests():
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    demo, test = blocks[0], blocks[1]
    assert demo.startswith("python -m pip install --require-hashes --no-deps -r requirements.lock && ")
    assert test.startswith("bash .ci/system-deps && "
                           "python -m pip install --require-hashes --no-deps -r requirements-test.lock && ")
    assert test.index("z4 ci-gate") < test.index("python -m pytest")
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert [ln for ln in run if ln.startswith(test)] == [test + " || exit $?"]
