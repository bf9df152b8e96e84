"""What the post-run records add to a run's MLflow run: tags naming the run cleaned and by whom, and counts."""

from __future__ import annotations

from z4_assets.core.cleanup._postrun import PostRun


def postrun_tags(cleaned_run_id: str, cleaned_by: str, post: PostRun) -> dict[str, str]:
    return {"z4.cleanup.dagster_run_id": cleaned_run_id, "z4.cleanup.by": cleaned_by,
            "z4.cleanup.complete": str(post.gate.passed).lower(),
            "z4.cleanup.at": post.report["finished_at"]}


def postrun_metrics(post: PostRun) -> dict[str, float]:
    r, m = post.report, post.manifest
    out = {"cleanup.removed_files": len(r["removed"]), "cleanup.removed_bytes": r["removed_bytes"],
           "cleanup.revoked": len(r["revoked"]), "cleanup.refused": len(r["refused"])}
    for name, agg in m["totals"].items():
        out[f"retention.{name}.files"] = agg["files"]
    return out
