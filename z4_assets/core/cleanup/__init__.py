"""The cleanup stage and retention: nothing a run created outlives it (scratch, temp files, secrets,
leases), every artifact it keeps has a retention class, and `z4 retention apply` deletes only what
expired, never the evidence of a signed or promoted run."""

from __future__ import annotations

from z4_assets.core.cleanup._apply import apply_retention, render, write_report
from z4_assets.core.cleanup._paths import contained
from z4_assets.core.cleanup._postrun import PostRun, finish_run
from z4_assets.core.cleanup._retention import parse_time, retention_policy
from z4_assets.core.cleanup._scratch import RunScratch
from z4_assets.core.files import atomic_write_json
from z4_assets.core.outcome import StageOutcome
from z4_assets.core.run_folder import RunFolder
from z4_assets.core.stages import CLEANUP

__all__ = ["PostRun", "RunScratch", "apply_retention", "contained", "finish_run", "parse_time", "render",
           "no_revoker", "retention_policy", "run_cleanup", "write_report"]


def no_revoker(lease: dict) -> str:
    """The local default: no token or lease is ever issued to a run. A lease recorded anyway (a run
    that had a vault, cleaned by a process that has none) is not revoked, and says so as a failure."""
    from z4_assets.core.errors import Z4Error

    raise Z4Error(f"no revoker configured (secrets: local files) for a lease issued by {lease.get('issuer')!r}")


def run_cleanup(folder: RunFolder, policy, revoke, cleaned_by: str, partition: str) -> StageOutcome:
    """Clean one run (passed or failed), write its cleanup report and retention manifest, judge it."""
    post = finish_run(folder, policy, revoke, cleaned_by)
    files = folder.stage(CLEANUP.folder)
    atomic_write_json(files.gates, [post.gate.as_dict()])
    r, m = post.report, post.manifest
    return StageOutcome(
        stage=CLEANUP.name, partition=partition, run_id=folder.run_id, gates=(post.gate,),
        files={"gates": str(files.gates), "cleanup_report": str(files.cleanup_report), "retention_manifest": str(files.retention_manifest)},
        metrics={"cleanup.removed_files": len(r["removed"]), "cleanup.removed_bytes": r["removed_bytes"],
                 "cleanup.revoked": len(r["revoked"]), "cleanup.refused": len(r["refused"]),
                 **{f"retention.{name}.files": agg["files"] for name, agg in m["totals"].items()}},
        tags={"z4.cleanup.dagster_run_id": folder.run_id, "z4.cleanup.by": cleaned_by,
              "z4.cleanup.complete": str(post.gate.passed).lower(), "z4.cleanup.at": r["finished_at"]},
        artifacts={"postrun": str(files.dir)},
        facts={"removed_files": len(r["removed"]), "removed_bytes": r["removed_bytes"], "revoked": len(r["revoked"]),
               "revocations": r["revoked"],
               "refused": r["refused"],
               "retention": {name: f"{t['files']} files ({t['kind']})" for name, t in m["totals"].items()}})
