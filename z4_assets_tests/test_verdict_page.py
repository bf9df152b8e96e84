"""What an auditor opens first: a blocked run reads as a decision (measured against threshold, no stack
trace), every run of a snapshot gets a verdict page, and the links between Dagster and MLflow work both ways."""

from __future__ import annotations

import shutil

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from z4_assets.core.links import dagster_run_url
from z4_assets.core.tracking import DESCRIPTION_TAG, EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from z4_assets.jobs import CleanupTarget, cleanup_job
from z4_assets.resources import MlflowTracking
from z4_assets.verdict_page import CLEANUP_OF_TAG, CLEANUP_RUN_TAG
from z4_assets_tests.conftest import check_verdicts, run_factory

DAGSTER_UI = "http://dagster.bank.example:8443/z4"   # not the default: a link built with a hard-coded base fails
MLFLOW_UI = "https://mlflow.bank.example/ui"


@pytest.fixture
def resources(factory_resources):
    m = factory_resources["mlflow"]
    return {**factory_resources, "mlflow": MlflowTracking(tracking_uri=m.tracking_uri, experiment_name=m.experiment_name,
                                                          dagster_url=DAGSTER_UI, mlflow_url=MLFLOW_UI)}


def _with_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    dup = df.sample(frac=0.05, random_state=3).copy()
    dup["ID"] = np.arange(len(df) + 1, len(df) + 1 + len(dup))
    return pd.concat([df, dup], ignore_index=True)


def _cleanup(resources, instance, run_id):
    config = dg.RunConfig(ops={"cleanup_failed_run": CleanupTarget(failed_run_id=run_id)})
    return cleanup_job.execute_in_process(run_config=config, resources=resources, instance=instance)


def _verdict(instance, partition):
    """The metadata of the snapshot's `verdict` asset (its verdict page) for PARTITION."""
    records = instance.fetch_materializations(dg.AssetKey("verdict"), limit=5).records
    (m,) = [r.asset_materialization for r in records if r.asset_materialization.partition == partition]
    return {k: v.value for k, v in m.metadata.items()}


def _mlflow(resources):
    client = MlflowClient(resources["mlflow"].tracking_uri)
    return client, client.get_experiment_by_name(resources["mlflow"].experiment_name)


def _by_dagster_run(client, exp, run_id):
    (run,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`dagster.run_id` = '{run_id}'")
    return run


def test_a_blocked_gate_reads_as_its_decision_and_the_verdict_page_names_it(sample_df, register, resources, instance):
    ref = register(_with_duplicates(sample_df.iloc[:6000]))
    failed = run_factory(resources, partition=ref.label, instance=instance)
    assert not failed.success and check_verdicts(failed)["duplicate_rows"] is False

    # the step failure is the decision: measured against threshold, the offending ids, where the evidence is
    (failure,) = [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_key == "hygiene_report"
    text = failure.step_failure_data.user_failure_data.description
    assert text.startswith(f"BLOCKED: hygiene_report of {ref.label} did not pass 1 gate(s)"), text
    assert "duplicate_rows FAIL: measured " in text and "must be <= 0" in text and "e.g. ids " in text, text
    assert f"runs/{failed.run_id}/hygiene/gates.json" in text
    assert failure.step_failure_data.error.cls_name == "Failure"  # not DagsterAssetCheckFailedError's trace
    assert "Traceback" not in text and "dagster._core" not in text
    assert "hygiene_report" in {e.asset_key.to_user_string() for e in failed.get_asset_materialization_events()}

    cleanup = _cleanup(resources, instance, failed.run_id)
    assert cleanup.success
    # failed run <-> cleanup run, in Dagster's run tags
    assert instance.get_run_by_id(failed.run_id).tags[CLEANUP_RUN_TAG] == cleanup.run_id
    assert instance.get_run_by_id(cleanup.run_id).tags[CLEANUP_OF_TAG] == failed.run_id

    page = (resources["storage"].folder(failed.run_id).postrun / "verdict.md").read_text()
    assert page.startswith("# Verdict: BLOCKED by hygiene_report"), page
    assert "| duplicate_rows | FAIL |" in page and "offending: ids " in page
    assert "| training | trained_model | skipped: hygiene_report did not pass in this run" in page
    assert "| snapshot | z3_snapshot | passed |" in page
    assert f"[{dagster_run_url(DAGSTER_UI, failed.run_id)}]" in page

    meta = _verdict(instance, ref.label)  # the snapshot's verdict asset shows it in Dagster
    assert meta["verdict"] == page and meta["decision_summary"] == "BLOCKED (hygiene_report)"
    assert meta["dagster_run_url"] == f"{DAGSTER_UI}/runs/{failed.run_id}"
    assert meta["cleanup_run_url"] == f"{DAGSTER_UI}/runs/{cleanup.run_id}"

    client, exp = _mlflow(resources)
    assert exp.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND  # the MLflow UI opens it on its runs
    run = _by_dagster_run(client, exp, failed.run_id)
    assert meta["mlflow_run_url"] == f"{MLFLOW_UI}/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}"
    assert run.data.tags["dagster_run_url"] == f"{DAGSTER_UI}/runs/{failed.run_id}"
    assert f"({DAGSTER_UI}/runs/{failed.run_id})" in run.data.tags[DESCRIPTION_TAG]  # a clickable Markdown link
    clean = _by_dagster_run(client, exp, cleanup.run_id)
    assert clean.info.run_name.startswith(f"z4-{ref.dataset_id}-")  # named like every run
    assert clean.data.tags["dagster_partition"] == ref.label and clean.data.tags["dataset_id"] == ref.dataset_id
    assert "blocked: hygiene_report" in clean.data.tags["z4.failed_run_error"]
    assert "policy_decision" not in clean.data.tags  # the failed run's own record holds the decision
    assert f"({DAGSTER_UI}/runs/{failed.run_id})" in clean.data.tags[DESCRIPTION_TAG]


def test_a_run_that_crashed_before_any_stage_was_tracked_gets_a_named_record_with_its_error(
        sample_df, register, resources, instance):
    ref = register(sample_df.iloc[:2000])
    shutil.rmtree(ref.path)  # the snapshot disappears between registration and the run
    failed = run_factory(resources, partition=ref.label, instance=instance)
    assert not failed.success and not failed.get_asset_materialization_events()
    client, exp = _mlflow(resources)
    assert not client.search_runs([exp.experiment_id], filter_string=f"tags.`dagster.run_id` = '{failed.run_id}'")

    cleanup = _cleanup(resources, instance, failed.run_id)
    assert cleanup.success
    clean = _by_dagster_run(client, exp, cleanup.run_id)
    assert clean.info.run_name.startswith(f"z4-{ref.dataset_id}-") and "postrun" not in clean.info.run_name
    tags = clean.data.tags
    assert (tags["dataset_id"], tags["snapshot_id"], tags["dagster_partition"]) == (
        ref.dataset_id, ref.snapshot_id, ref.label)
    assert tags["policy_decision"] == "FAIL"  # its only MLflow record carries the decision and the real error
    assert tags["z4.error"].startswith(f"{failed.run_id}: crashed: z3_snapshot of {ref.label}: "), tags["z4.error"]
    page = (resources["storage"].folder(failed.run_id).postrun / "verdict.md").read_text()
    assert page.startswith("# Verdict: CRASHED in z3_snapshot"), page
    assert _verdict(instance, ref.label)["decision_summary"] == "CRASHED (z3_snapshot)"


def test_a_promoted_runs_page_and_registry_version_hold_the_decision_the_digest_and_the_links(sample_factory_run):
    run, result = sample_factory_run, sample_factory_run["result"]
    assert result.success
    ref, resources = run["ref"], run["resources"]
    meta = _verdict(run["instance"], ref.label)
    assert meta["decision_summary"] == "PROMOTED"
    page = meta["verdict"]
    assert page.startswith("# Verdict: PROMOTED") and "BLOCKED" not in page
    assert "| packaging | signed_package | done (it has no gates of its own) | - |" in page
    client, exp = _mlflow(resources)
    mlflow_run = _by_dagster_run(client, exp, result.run_id)
    (version,) = client.search_model_versions(f"name = 'z4-{ref.dataset_id}'")
    sha = version.tags["package_sha256"]
    assert f"sha256 `{sha}`" in page
    # defaults: the Dagster UI on 3000; a sqlite store has no UI, so `mlflow ui`'s 5000
    version_url = f"http://127.0.0.1:5000/#/models/z4-{ref.dataset_id}/versions/{version.version}"
    assert meta["registry_version_url"] == version_url and f"[{version_url}]" in page
    assert meta["mlflow_run_url"] == f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs/{mlflow_run.info.run_id}"
    promo = result.asset_materializations_for_node("promotion")[0].metadata
    assert promo["registry_version_url"].value == version_url and promo["mlflow_run_url"].value == meta["mlflow_run_url"]
    # the version's description: nothing an auditor needs hides below its tags
    desc = version.description
    assert desc.startswith(f"**Decision: PASS** for snapshot `{ref.label}`") and f"`{sha}`" in desc
    assert f"(http://127.0.0.1:3000/runs/{result.run_id})" in desc and f"({meta['mlflow_run_url']})" in desc
    assert "(http://127.0.0.1:3000/assets/verdict?view=partitions&partition=" in desc
    # the MLflow run's description: its Dagster run, then the verdict page
    note = mlflow_run.data.tags[DESCRIPTION_TAG]
    assert f"[{result.run_id}](http://127.0.0.1:3000/runs/{result.run_id})" in note and "# Verdict: PROMOTED" in note
