"""`z4 retention apply` with a fake clock: what expires goes, evidence of signed or promoted runs stays."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from z4_assets import cli
from z4_assets.core.cleanup._apply import apply_retention
from z4_assets.core.run_folder import RunFolder
from z4_assets.core.cleanup._postrun import finish_run
from z4_assets.core.policy import load_policy

T0 = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
EVIDENCE = ["snapshot/gates.json", "hygiene/hygiene_report.json", "model/weights.pt", "model/metrics.json"]


def _run(root: Path, run_id: str, signed: str | None = None) -> RunFolder:
    """A finished run cleaned up at T0; SIGNED adds package/ or promotion/promotion.json afterwards."""
    paths = RunFolder(root, run_id)
    for rel in EVIDENCE + ["intermediate/split.parquet"]:
        (paths.run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (paths.run_dir / rel).write_text(rel)
    finish_run(paths, load_policy(None, "any"), lambda lease: "noop", cleaned_by="test", now=T0)
    if signed == "package":
        paths.package_dir.mkdir()
        (paths.package_dir / "model.sig").write_text("signature")
    elif signed == "promotion":
        paths.stage("promotion").promotion.write_text("{}")
    return paths


@pytest.fixture
def factory(tmp_path):
    root = tmp_path / "factory"
    return {"root": root, "plain": _run(root, "run-plain"), "signed": _run(root, "run-signed", "package"),
            "promoted": _run(root, "run-promoted", "promotion")}


def _exists(paths: RunFolder, rel: str) -> bool:
    return (paths.run_dir / rel).exists()


def test_nothing_expires_on_the_next_day(factory):
    report = apply_retention(factory["root"], T0 + timedelta(days=1))
    assert report["deleted"] == []
    assert all(_exists(factory["plain"], rel) for rel in EVIDENCE + ["intermediate/split.parquet"])


def test_intermediates_go_after_7_days_evidence_stays(factory):
    report = apply_retention(factory["root"], T0 + timedelta(days=7, seconds=1))
    deleted = {(d["run_id"], d["path"]) for d in report["deleted"]}
    assert deleted == {(r, "intermediate/split.parquet") for r in ("run-plain", "run-signed", "run-promoted")}
    assert not _exists(factory["plain"], "intermediate")  # emptied folders are pruned
    assert all(_exists(factory["plain"], rel) for rel in EVIDENCE)


def test_after_90_days_only_unprotected_evidence_goes_and_records_stay(factory):
    report = apply_retention(factory["root"], T0 + timedelta(days=91))
    by_run = {}
    for d in report["deleted"]:
        by_run.setdefault(d["run_id"], set()).add(d["path"])
    assert by_run == {"run-plain": set(EVIDENCE) | {"intermediate/split.parquet"},
                      "run-signed": {"intermediate/split.parquet"},
                      "run-promoted": {"intermediate/split.parquet"}}
    for name in ("signed", "promoted"):
        assert all(_exists(factory[name], rel) for rel in EVIDENCE), name
    assert _exists(factory["signed"], "package/model.sig")
    assert _exists(factory["plain"], "postrun/cleanup_report.json")  # RET-3650
    assert _exists(factory["plain"], "postrun/retention_manifest.json")
    kept = {k["run_id"]: k["reason"] for k in report["kept"] if k["path"] == "model/weights.pt"}
    assert kept["run-signed"].startswith("protected: signed or promoted model (package present)")
    assert kept["run-promoted"].startswith("protected: signed or promoted model (promotion/promotion.json present)")


def test_dry_run_deletes_nothing_and_says_what_it_would(factory):
    report = apply_retention(factory["root"], T0 + timedelta(days=91), dry_run=True)
    assert len(report["deleted"]) == len(EVIDENCE) + 3
    assert all(_exists(factory["plain"], rel) for rel in EVIDENCE + ["intermediate/split.parquet"])


def test_a_manifest_pointing_outside_its_run_is_refused(factory, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    path = factory["plain"].postrun / "retention_manifest.json"
    manifest = json.loads(path.read_text())
    for bad in ("/", "..", "../run-signed/model/weights.pt", f"../../../{victim.name}/keep.txt", str(victim)):
        manifest["entries"].append({"path": bad, "class": "RET-7", "kind": "INTERMEDIATE", "size": 1,
                                    "expires_at": "2000-01-01T00:00:00Z"})
    path.write_text(json.dumps(manifest))
    report = apply_retention(factory["root"], T0 + timedelta(days=91))
    assert len(report["refused"]) == 5
    assert (victim / "keep.txt").read_text() == "precious"
    assert _exists(factory["signed"], "model/weights.pt")


def test_runs_without_a_manifest_are_kept_whole_and_orphaned_scratch_is_removed(factory):
    root = factory["root"]
    lone = root / "runs" / "run-never-cleaned" / "model"
    lone.mkdir(parents=True)
    (lone / "weights.pt").write_text("w")
    old, young = root / "scratch" / "run-crashed", root / "scratch" / "run-still-going"
    for d in (old, young):
        (d / "tmp").mkdir(parents=True)
        (d / "tmp" / "x.bin").write_bytes(b"12345")
    as_of = T0 + timedelta(days=91)
    stamp = (as_of - timedelta(hours=30)).timestamp()
    os.utime(old, (stamp, stamp))
    stamp = (as_of - timedelta(hours=2)).timestamp()
    os.utime(young, (stamp, stamp))

    report = apply_retention(root, as_of, scratch_grace_hours=24)
    assert (lone / "weights.pt").exists()
    assert report["unclassified_runs"] == [{"run_id": "run-never-cleaned", "reason": "no retention manifest: kept whole"}]
    assert [o["run_id"] for o in report["orphaned_scratch"]] == ["run-crashed"]
    assert report["orphaned_scratch"][0]["size"] == 5
    assert not old.exists() and young.exists()


def test_cli_prints_deleted_and_kept_and_writes_a_report(factory, monkeypatch, capsys):
    monkeypatch.setenv("Z4_FACTORY_ROOT", str(factory["root"]))
    monkeypatch.delenv("Z4_POLICY", raising=False)
    as_of = (T0 + timedelta(days=8)).isoformat()
    assert cli.main(["retention", "apply", "--dry-run", "--as-of", as_of]) == 0
    out = capsys.readouterr().out
    assert "would delete: runs/run-plain/intermediate/split.parquet (RET-7, INTERMEDIATE" in out
    assert "kept: runs/run-plain: 5 file(s), not expired yet" in out
    assert _exists(factory["plain"], "intermediate/split.parquet")

    assert cli.main(["retention", "apply", "--as-of", as_of]) == 0
    out = capsys.readouterr().out
    assert "deleted: runs/run-plain/intermediate/split.parquet" in out
    assert not _exists(factory["plain"], "intermediate/split.parquet")
    reports = sorted(p.name for p in (factory["root"] / "retention").iterdir())
    assert reports == ["apply-20260109T120000-dry-run.json", "apply-20260109T120000.json"]
    saved = json.loads((factory["root"] / "retention" / reports[1]).read_text())
    assert saved["dry_run"] is False and len(saved["deleted"]) == 3


def test_cli_rejects_a_bad_as_of(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("Z4_FACTORY_ROOT", str(tmp_path))
    assert cli.main(["retention", "apply", "--as-of", "next tuesday"]) == 2
    assert "is not an ISO date" in capsys.readouterr().err
