"""The end of every run, passed or failed: clean up, classify what is left, write both records.

postrun/cleanup_report.json says what was removed (paths, sizes, sha256), revoked and unset,
and when; postrun/retention_manifest.json classifies every artifact of the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from z4_assets.core.run_folder import FILES, RunFolder
from z4_assets.core.cleanup._retention import MANIFEST_NAME, build_manifest, retention_policy
from z4_assets.core.cleanup._sweep import Revoke, clean_run
from z4_assets.core.files import atomic_write_json
from z4_assets.core.gates import Gate
from z4_assets.core.stages import CLEANUP

REPORT_NAME = FILES["postrun"]["cleanup_report"]


@dataclass
class PostRun:
    report: dict
    manifest: dict
    gate: Gate


def finish_run(paths: RunFolder, policy, revoke: Revoke, cleaned_by: str,
               now: datetime | None = None) -> PostRun:
    """Clean the run, write both records to runs/<run id>/postrun/, and judge the result."""
    retention = retention_policy(policy.retention, policy.source)
    at = now or datetime.now(timezone.utc)
    report = clean_run(paths, revoke, at, retention.hash_max_bytes)
    report["cleaned_by"] = cleaned_by
    gate = cleanup_gate(report)
    report["complete"] = gate.passed
    atomic_write_json(paths.postrun / REPORT_NAME, report)
    manifest = build_manifest(paths, retention, report["removed"], at,
                              {"cleaned_by": cleaned_by, "policy_source": policy.source})
    atomic_write_json(paths.postrun / MANIFEST_NAME, manifest)
    return PostRun(report, manifest, gate)


def cleanup_gate(report: dict) -> Gate:
    failed_revocations = [r for r in report["revoked"] if str(r["status"]).startswith("failed")]
    problems = (len(report["refused"]) + len(report["errors"]) + len(failed_revocations)
                + (0 if report["scratch_removed"] else 1))
    return CLEANUP.gate.cleanup_complete.compare(problems, "==", 0,
                   "refused records, errors, failed revocations and scratch left behind",
                   {"refused": report["refused"], "errors": report["errors"],
                    "failed_revocations": failed_revocations,
                    "scratch_removed": report["scratch_removed"],
                    "removed_files": len(report["removed"]), "removed_bytes": report["removed_bytes"]})
