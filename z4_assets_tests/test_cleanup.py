"""Post-run cleanup on its own: what is removed, revoked and reported, and what is never touched."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone

import pytest

from z4_assets.core.cleanup._paths import contained
from z4_assets.core.run_folder import RunFolder
from z4_assets.core.cleanup._postrun import finish_run
from z4_assets.core.cleanup._retention import retention_policy
from z4_assets.core.cleanup._scratch import RunScratch
from z4_assets.core.errors import Z4Error
from z4_assets.core.policy import load_policy

RUN = "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
SECRET = "s3cr3t-value-that-must-never-appear"  # a test canary  # pragma: allowlist secret
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def policy():
    return load_policy(None, "any")


@pytest.fixture
def run(tmp_path):
    """A run folder shaped like a real one, and a scratch with a cache, a temp file and a secret."""
    paths = RunFolder(tmp_path / "factory", RUN)
    for rel, text in {"snapshot/gates.json": "[]", "hygiene/hygiene_report.json": "{}",
                      "model/weights.pt": "w" * 100, "model/metrics.json": "{}",
                      "intermediate/split.parquet": "s" * 50, "hygiene/.gates.json.x1.tmp": "partial"}.items():
        (paths.run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (paths.run_dir / rel).write_text(text)
    scratch = RunScratch(paths)
    (scratch.dir("cache", "z3") / "data.parquet").write_bytes(b"x" * 4096)
    (scratch.dir("tmp") / "sort.bin").write_bytes(b"y" * 10)
    scratch.write_secret("s3-credentials", SECRET)
    scratch.record_lease("aws/creds/z4/abc123", "vault")
    scratch.set_env("Z4_TEST_RUN_TOKEN", SECRET)
    return paths


class Recording:
    def __init__(self):
        self.leases = []

    def __call__(self, lease):
        self.leases.append(lease["lease_id"])
        return "revoked"


def test_cleanup_removes_scratch_temp_files_secrets_env_and_revokes_leases(run, policy, caplog):
    revoker = Recording()
    caplog.set_level(logging.DEBUG)
    post = finish_run(run, policy, revoker, cleaned_by="test", now=T0)

    assert not run.scratch.exists()
    assert not (run.run_dir / "hygiene" / ".gates.json.x1.tmp").exists()
    assert "Z4_TEST_RUN_TOKEN" not in os.environ
    assert revoker.leases == ["aws/creds/z4/abc123"]
    assert post.gate.passed, post.gate.summary
    removed = {r["path"]: r for r in post.report["removed"]}
    assert removed["cache/z3/data.parquet"]["size"] == 4096
    assert len(removed["cache/z3/data.parquet"]["sha256"]) == 64
    assert removed["secrets/s3-credentials"]["sha256"] is None
    assert removed["secrets/s3-credentials"]["what"].startswith("secret file")
    assert removed["hygiene/.gates.json.x1.tmp"]["what"].startswith("temp file")
    assert post.report["revoked"] == [{"lease_id": "aws/creds/z4/abc123", "issuer": "vault", "status": "revoked"}]
    assert post.report["env_unset"] == [{"name": "Z4_TEST_RUN_TOKEN", "was_set_in_this_process": True}]
    assert post.report["started_at"] == "2026-01-01T00:00:00Z"

    written = (run.postrun / "cleanup_report.json").read_text() + (run.postrun / "retention_manifest.json").read_text()
    assert SECRET not in written and SECRET not in caplog.text
    assert json.loads((run.postrun / "cleanup_report.json").read_text())["complete"] is True


def test_retention_manifest_classifies_every_artifact(run, policy):
    post = finish_run(run, policy, Recording(), cleaned_by="test", now=T0)
    entries = {e["path"]: e for e in post.manifest["entries"]}
    assert entries["model/weights.pt"]["class"] == "RET-90" and entries["model/weights.pt"]["kind"] == "EVIDENCE"
    assert entries["model/weights.pt"]["expires_at"] == "2026-04-01T00:00:00Z"
    assert entries["intermediate/split.parquet"]["kind"] == "INTERMEDIATE"
    assert entries["intermediate/split.parquet"]["expires_at"] == "2026-01-08T00:00:00Z"
    assert entries["postrun/cleanup_report.json"]["class"] == "RET-3650"
    transient = [e for e in post.manifest["entries"] if e["kind"] == "TRANSIENT"]
    assert {e["path"] for e in transient} >= {"cache/z3/data.parquet", "secrets/s3-credentials", "tmp/sort.bin"}
    assert all(e["deleted_at"] == "2026-01-01T00:00:00Z" for e in transient)
    assert post.manifest["totals"]["RET-7"] == {"kind": "INTERMEDIATE", "files": 1, "bytes": 50}


@pytest.mark.parametrize("record", ["/", "..", "../..", "../../victim", "{victim}", "{outside_link}/x"])
def test_a_record_pointing_outside_the_run_is_refused_and_nothing_is_touched(tmp_path, run, policy, record):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    os.symlink(victim, run.factory_root / "outside_link")
    RunScratch(run).record_file(record.format(victim=victim, outside_link=run.factory_root / "outside_link"))
    post = finish_run(run, policy, Recording(), cleaned_by="test", now=T0)

    assert (victim / "keep.txt").read_text() == "precious"
    assert (run.run_dir / "model" / "weights.pt").exists()
    assert [r["path"] for r in post.report["refused"]] == [record.format(
        victim=victim, outside_link=run.factory_root / "outside_link")]
    assert post.gate.passed is False and post.gate.value == 1
    assert not run.scratch.exists(), "the rest of the cleanup still happens"


def test_a_symlink_in_scratch_is_removed_but_its_target_is_not(tmp_path, run, policy):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    os.symlink(victim, run.scratch / "link-to-elsewhere")
    os.symlink(victim / "keep.txt", run.scratch / "tmp" / "file-link")
    post = finish_run(run, policy, Recording(), cleaned_by="test", now=T0)
    assert (victim / "keep.txt").read_text() == "precious"
    assert not run.scratch.exists() and post.gate.passed
    links = [r for r in post.report["removed"] if "symlink" in r["what"]]
    assert {r["path"] for r in links} == {"link-to-elsewhere", "tmp/file-link"}


def test_a_recorded_file_inside_the_run_folder_is_removed(run, policy):
    (run.run_dir / "model" / "checkpoint-epoch3.pt").write_text("c")
    RunScratch(run).record_file(str(run.run_dir / "model" / "checkpoint-epoch3.pt"))
    post = finish_run(run, policy, Recording(), cleaned_by="test", now=T0)
    assert not (run.run_dir / "model" / "checkpoint-epoch3.pt").exists()
    assert post.gate.passed and any(r["path"] == "model/checkpoint-epoch3.pt" for r in post.report["removed"])


def test_a_revoker_error_is_reported_by_type_only_and_fails_the_gate(run, policy):
    def leaky(lease):
        raise RuntimeError(f"403 for token {SECRET}")

    post = finish_run(run, policy, leaky, cleaned_by="test", now=T0)
    assert post.report["revoked"][0]["status"] == "failed: RuntimeError"
    assert post.gate.passed is False
    assert SECRET not in (run.postrun / "cleanup_report.json").read_text()


def test_run_ids_that_could_escape_are_rejected(tmp_path):
    for bad in ("..", "../x", "/etc", "a/b", "", ".hidden"):
        with pytest.raises(Z4Error, match="invalid run id"):
            RunFolder(tmp_path, bad)


def test_contained_only_accepts_paths_strictly_inside(tmp_path):
    base = tmp_path / "base"
    (base / "a").mkdir(parents=True)
    assert contained("a/f", base) == base / "a" / "f"
    assert contained(str(base / "a" / "f"), base) == base / "a" / "f"
    for bad in ("/", "..", ".", "", "a/../..", str(tmp_path), str(base), "../base2/x"):
        assert contained(bad, base) is None, bad


@pytest.mark.parametrize("change, message", [
    ({"RET-90": {"kind": "EVIDENCE", "days": 30}}, "at least 90"),
    ({"RET-0": {"kind": "TRANSIENT", "days": 3}}, "deleted now"),
    ({"RET-7": {"kind": "SOMETHING", "days": 7}}, "kind must be one of"),
])
def test_retention_policy_refuses_weak_classes(policy, change, message):
    section = {**policy.retention, "classes": {**policy.retention["classes"], **change}}
    with pytest.raises(Z4Error, match=message):
        retention_policy(section, "policy.yaml")


def test_retention_rules_must_name_known_classes_and_default_to_evidence(policy):
    with pytest.raises(Z4Error, match="known class"):
        retention_policy({**policy.retention, "rules": [{"glob": "*", "class": "RET-1"}]})
    with pytest.raises(Z4Error, match="default_class"):
        retention_policy({**policy.retention, "default_class": "RET-7"})


def test_the_delete_primitive_itself_refuses_anything_outside_its_base(tmp_path):
    """Defence in depth: even a caller that skipped `contained` cannot delete outside BASE.
    (Only harmless temp folders are used as targets, so a broken guard cannot do damage.)"""
    from z4_assets.core.cleanup._paths import remove

    base, victim = tmp_path / "base", tmp_path / "victim"
    (base / "inner").mkdir(parents=True)
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    for target in (victim, base, base / ".." / "victim", base / "inner" / ".." / ".." / "victim"):
        with pytest.raises(Z4Error, match="refusing to delete a path outside"):
            remove(target, base)
    assert (victim / "keep.txt").read_text() == "precious" and base.is_dir()
    assert remove(base / "inner", base) == 0 and not (base / "inner").exists()
