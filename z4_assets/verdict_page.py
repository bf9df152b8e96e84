"""The verdict page of a run, written where an auditor finds it: the run's postrun/verdict.md, the
`verdict` asset of the snapshot's partition (its `verdict` Markdown metadata, materialized by
cleanup_report in a passing run and by the cleanup job for a failed one), and the MLflow run's
description. core/verdict.py makes the page; this module reads how each step ended from Dagster."""

from __future__ import annotations

import dagster as dg

from z4_assets.core.links import VERDICT_ASSET
from z4_assets.core.stages import CLEANUP
from z4_assets.core.tracking import redact_uri
from z4_assets.core.verdict import SUCCEEDED
from z4_assets.partitions import snapshots

# Not a step of model_factory: the page each run of a snapshot ends with, what an auditor opens first.
verdict_spec = dg.AssetSpec(
    VERDICT_ASSET, group_name="release", partitions_def=snapshots, deps=[CLEANUP.asset], kinds={"markdown"},
    description="The snapshot's verdict page: the verdict, the gate that blocked (measured against threshold, "
                "offending examples), what was skipped and why, and links to the evidence, the Dagster and "
                "MLflow runs, the package and the registry version. Written by the run's last step, or by the "
                "cleanup job for a run that failed.")

CLEANUP_RUN_TAG = "z4/cleanup_run"   # on a failed model_factory run: the cleanup job's run for it
CLEANUP_OF_TAG = "z4/cleanup_of"     # on a cleanup run: the failed run it cleans


def step_ends(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """asset -> how its step ended: 'succeeded', 'blocked: ...', 'crashed: <error>' or 'skipped: ...'."""
    out: dict[str, str] = {}
    for r in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records:
        out[r.event_log_entry.dagster_event.step_key] = SUCCEEDED
    for kind in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SKIPPED):
        for r in instance.get_records_for_run(run_id, of_type=kind).records:
            event = r.event_log_entry.dagster_event
            if event.event_type == dg.DagsterEventType.STEP_SKIPPED:
                out.setdefault(event.step_key, "skipped: a stage it needs did not pass in this run")
                continue
            err = event.event_specific_data.error
            while err is not None and err.cause is not None:
                err = err.cause
            text = (err.message if err else "").strip().splitlines()
            first = redact_uri(text[0]) if text else "unknown error"  # never a password of a URI in an error
            if "BLOCKED: " in first:  # observability.blocked_message: a gate's decision
                out[event.step_key] = "blocked: " + first.split("BLOCKED: ", 1)[1]
            elif "AssetCheckFailed" in first:  # Dagster's own wording, for a run made before the message
                out[event.step_key] = f"blocked: {first[first.find(':') + 1:].strip()}"
            else:
                out[event.step_key] = f"crashed: {first.removeprefix('dagster._core.definitions.events.Failure: ')}"
    return out


def run_error(instance: dg.DagsterInstance, run_id: str) -> str:
    """The first line of the error that ended a failed run: a step's, else the run's own failure message."""
    crashed = [v for v in step_ends(instance, run_id).values() if not v.startswith(("skipped", SUCCEEDED))]
    if crashed:
        return crashed[0]
    for r in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records:
        message = (r.event_log_entry.dagster_event.message or "").strip().splitlines()
        if message:
            return redact_uri(message[0])
    return "unknown: the run recorded no error"


def links(dagster_url: str, recorder, factory_run_id: str, cleanup_run_id: str = "") -> dict[str, str]:
    """The page's links: the Dagster run (and its cleanup run), its MLflow run, the MLflow runs table, the
    registry version (when one was registered). RECORDER: a core.tracking.RunRecorder, or None."""
    from z4_assets.core.links import dagster_run_url, mlflow_experiment_url

    out = {"dagster_run": dagster_run_url(dagster_url, factory_run_id)}
    if cleanup_run_id:
        out["cleanup_run"] = dagster_run_url(dagster_url, cleanup_run_id)
    if recorder is not None:
        found = recorder.find(factory_run_id)
        if found:
            out["mlflow_run"] = recorder.run_url(found)
        out["mlflow_runs"] = mlflow_experiment_url(recorder.ui_url, recorder.experiment_id)
    return out


def verdict_metadata(path, text: str, verdict: str, stopper: str | None, urls: dict[str, str]) -> dict:
    from z4_assets.core.verdict import LINK_NAMES

    meta = {"verdict": dg.MetadataValue.md(text),
            "decision_summary": dg.MetadataValue.text(f"{verdict}" + (f" ({stopper})" if stopper else "")),
            "file_verdict": dg.MetadataValue.path(str(path))}
    meta.update({f"{k}_url": dg.MetadataValue.url(v) for k, v in urls.items() if k in LINK_NAMES})
    return meta


def record_verdict(context, partition: str, meta: dict) -> None:
    """The run's verdict page as a materialization of the snapshot's `verdict` asset."""
    if partition:
        context.log_event(dg.AssetMaterialization(asset_key=VERDICT_ASSET, partition=partition, metadata=meta))
