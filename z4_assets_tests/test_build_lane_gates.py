"""Each build-lane gate passes on the real repository and FAILS on a planted bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from z4_assets.buildlane.dockercheck import check_dockerfile
from z4_assets.buildlane.lockcheck import RUNTIME_LOCK, TEST_LOCK, check_locks
from z4_assets.buildlane.result import FAIL, PASS
from z4_assets.buildlane.sast import run_bandit, run_ruff
from z4_assets.buildlane.secret_scan import repo_files, scan_secrets

ROOT = Path(__file__).resolve().parents[1]


def _copy(tmp_path: Path, *names: str) -> Path:
    for name in names:
        src, dst = ROOT / name, tmp_path / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "sample_data"))
        else:
            shutil.copy2(src, dst)
    return tmp_path


# -- lockfile -------------------------------------------------------------------------------------


@pytest.fixture
def lock_copy(tmp_path):
    return _copy(tmp_path, "pyproject.toml", RUNTIME_LOCK, TEST_LOCK)


def test_lock_gate_passes_on_the_real_locks():
    result = check_locks(ROOT)
    assert result.status == PASS, result.details
    assert "requirements.lock" in result.summary


def test_lock_gate_fails_on_an_unpinned_dependency(lock_copy):
    with open(lock_copy / RUNTIME_LOCK, "a", encoding="utf-8") as f:
        f.write("requests>=2\n")
    result = check_locks(lock_copy)
    assert result.status == FAIL
    assert any("requests is not pinned with ==" in d for d in result.details), result.details


def test_lock_gate_fails_on_a_pin_without_hash(lock_copy):
    path = lock_copy / TEST_LOCK
    path.write_text(path.read_text(encoding="utf-8") + "left-pad-z4==1.0.0\n", encoding="utf-8")
    result = check_locks(lock_copy)
    assert result.status == FAIL
    assert any("left-pad-z4==1.0.0 has no --hash=sha256" in d for d in result.details)


def test_lock_gate_fails_when_pyproject_moves_and_the_lock_does_not(lock_copy):
    py = lock_copy / "pyproject.toml"
    text = py.read_text(encoding="utf-8")
    py.write_text(
        text.replace('"pandas==2.3.3"', '"pandas==2.3.2"').replace(
            '"pyopenssl>=24",', '"pyopenssl>=24",\n    "not-locked-anywhere==1.0",'
        ),
        encoding="utf-8",
    )
    details = check_locks(lock_copy).details
    assert any("pandas==2.3.3 does not satisfy pyproject.toml's '==2.3.2'" in d for d in details)
    assert any("not-locked-anywhere is in pyproject.toml but not locked" in d for d in details)


def test_lock_gate_fails_on_a_non_cpu_torch_and_a_runtime_pin_the_tests_never_saw(lock_copy):
    path = lock_copy / RUNTIME_LOCK
    text = path.read_text(encoding="utf-8")
    assert "torch==2.13.0+cpu" in text
    path.write_text(text.replace("torch==2.13.0+cpu", "torch==2.13.0"), encoding="utf-8")
    details = check_locks(lock_copy).details
    assert any("torch==2.13.0 is not the +cpu build" in d for d in details)
    assert any("torch==2.13.0 differs from requirements-test.lock" in d for d in details)


# -- SAST -----------------------------------------------------------------------------------------


@pytest.fixture
def package_copy(tmp_path):
    return _copy(tmp_path, "z4_assets", ".ci/bandit.yaml", "ruff.toml")


def _plant(root: Path, line: str) -> Path:
    path = root / "z4_assets" / "core" / "planted.py"
    path.write_text(
        f'"""Planted by a test."""\nimport subprocess\n\n\ndef run(cmd):\n    {line}\n', encoding="utf-8"
    )
    return path


def test_bandit_passes_on_the_package():
    result = run_bandit(ROOT)
    assert result.status == PASS, result.details


def test_bandit_fails_on_a_planted_shell_true(package_copy):
    _plant(package_copy, "return subprocess.call(cmd, shell=True)")
    result = run_bandit(package_copy)
    assert result.status == FAIL
    assert any("planted.py:6: B602 high severity" in d for d in result.details), result.details


def test_a_nosec_without_a_reason_fails_and_one_with_a_reason_passes(package_copy):
    _plant(package_copy, "return subprocess.call(cmd, shell=True)  # nosec B602")
    bare = run_bandit(package_copy)
    assert bare.status == FAIL
    assert any("planted.py:6: '# nosec' needs test id(s) and a reason" in d for d in bare.details)
    _plant(package_copy, "return subprocess.call(cmd, shell=True)  # nosec  # trust me")
    assert run_bandit(package_copy).status == FAIL  # names no test: would silence every check
    _plant(package_copy, "return subprocess.call(cmd, shell=True)  # nosec B602 # cmd is a module constant")
    assert run_bandit(package_copy).status == PASS


def test_ruff_passes_on_the_repo_and_fails_on_an_undefined_name(package_copy):
    assert run_ruff(ROOT).status == PASS
    _plant(package_copy, "return undefined_helper(cmd)")
    result = run_ruff(package_copy, paths=("z4_assets",))
    assert result.status == FAIL
    assert any("planted.py:6" in d and "F821" in d for d in result.details), result.details


# -- secrets --------------------------------------------------------------------------------------


def test_secrets_scan_passes_on_the_repo():
    result = scan_secrets(ROOT)
    assert result.status == PASS, result.details


def test_secrets_scan_fails_on_a_key_planted_in_a_copy_of_the_repo(tmp_path):
    for rel in repo_files(ROOT):
        if (ROOT / rel).is_file():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, tmp_path / rel)
    assert scan_secrets(tmp_path).status == PASS  # the copy (not a git checkout) is clean
    key = "AKIA" + "Z4PLANTEDFAKE" + "KEY"[:3]  # built here so this file holds no key itself
    (tmp_path / "z4_assets" / "core" / "settings_local.py").write_text(
        f'AWS_ACCESS_KEY_ID = "{key}"\n', encoding="utf-8"
    )
    result = scan_secrets(tmp_path)
    assert result.status == FAIL
    assert any(d.startswith("z4_assets/core/settings_local.py:1: AWS Access Key") for d in result.details)


# -- Dockerfile -----------------------------------------------------------------------------------

DIGEST_FROM = "python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7"


@pytest.fixture
def dockerfile_copy(tmp_path):
    return _copy(tmp_path, "Dockerfile", ".hadolint.yaml")


def _edit(root: Path, old: str, new: str, count: int = 1) -> None:
    path = root / "Dockerfile"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def test_dockerfile_passes_as_checked_in():
    result = check_dockerfile(ROOT)
    assert result.status == PASS, result.details


def test_dockerfile_fails_on_a_latest_base_image(dockerfile_copy):
    _edit(dockerfile_copy, "FROM scratch\n", "FROM python:latest\n")
    result = check_dockerfile(dockerfile_copy)
    assert result.status == FAIL
    assert any("'python:latest' uses the floating :latest tag" in d for d in result.details)
    assert any("DL3007" in d for d in result.details)  # hadolint agrees


def test_dockerfile_fails_on_a_tag_without_digest(dockerfile_copy):
    _edit(dockerfile_copy, "FROM scratch\n", "FROM python:3.11-slim\n")
    details = check_dockerfile(dockerfile_copy).details
    assert any("'python:3.11-slim' is not pinned by @sha256 digest" in d for d in details)


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("USER 10001:10001\n", "", "never sets USER: it would run as root"),
        ("USER 10001:10001\n", "USER root\n", "runs as root"),
        ("ADD project.tar /\n", "ADD project.tar /\nRUN pip install requests\n",
         "must install from requirements.lock with --require-hashes"),
        ("    PIP_NO_INDEX=1 \\\n", "", "must set PIP_NO_INDEX=1"),
        ("WORKDIR /home/z4\n", "WORKDIR /home/z4\nEXPOSE 8080\n", "listens on no port"),
        ("ADD project.tar /\n", "ADD project.tar /\nRUN curl -o /x http://example.com/x\n",
         "network/shell tool (curl)"),
        # ADD only for a local layer tarball in a FROM scratch stage: never a URL, never over a pulled base
        ("ADD rootfs.tar /\n", "ADD https://example.com/rootfs.tar /\n", "ADD can fetch URLs"),
        ("FROM scratch\n", f"FROM {DIGEST_FROM}\n", "ADD can fetch URLs"),
    ],
)
def test_dockerfile_fails_when_a_hardening_rule_breaks(dockerfile_copy, old, new, message):
    _edit(dockerfile_copy, old, new)
    result = check_dockerfile(dockerfile_copy)
    assert result.status == FAIL
    assert any(message in d for d in result.details), result.details


def test_a_crashing_check_is_a_failed_gate_not_a_pass(lock_copy):
    import io

    from z4_assets.buildlane.runner import run_lane

    (lock_copy / "pyproject.toml").write_text("[project\nname = broken", encoding="utf-8")
    out = io.StringIO()
    results, code = run_lane(lock_copy, "development", only=["lock"], out_dir=lock_copy / "out", stream=out)
    assert code == 1 and results[0].status == FAIL
    assert "the check crashed: TOMLDecodeError" in results[0].summary
    assert "ci-gate: FAIL" in out.getvalue()


def test_an_sbom_that_breaks_the_cyclonedx_schema_is_never_published(tmp_path, monkeypatch):
    """generate_sbom skips cyclonedx-py's slow format checks but still validates the structure."""
    import json as _json
    import subprocess as _subprocess

    from z4_assets.core import sbom
    from z4_assets.core.errors import Z4Error

    real_run = _subprocess.run

    def broken_output(cmd, **kw):  # cyclonedx-py writes a BOM whose component type is not CycloneDX
        proc = real_run(cmd, **kw)
        out = cmd[cmd.index("-o") + 1]
        doc = _json.loads(open(out).read())
        doc["components"][0]["type"] = "banana"
        open(out, "w").write(_json.dumps(doc))
        return proc

    monkeypatch.setattr(sbom.subprocess, "run", broken_output)
    target = tmp_path / "sbom.json"
    with pytest.raises(Z4Error, match="not a valid CycloneDX 1.6 SBOM at components/0/type"):
        sbom.generate_sbom(target)
    assert not target.exists() and not list(tmp_path.iterdir()), "nothing half-written"
