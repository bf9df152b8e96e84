"""A run that fails a blocking gate still ends clean: the failure sensor launches the cleanup job for it."""

from __future__ import annotations

import json

import dagster as dg
from mlflow.tracking import MlflowClient

from z4_assets.jobs import cleanup_job
from z4_assets.resources import S3Z3Store
from z4_assets.sensors.failures import cleanup_on_failure
from z4_assets_tests.conftest import with_duplicate_rows, check_verdicts, run_factory
from z4_assets_tests.s3_fake import BUCKET, PREFIX, s3_endpoint, upload  # noqa: F401 (fixture)


def _failure_context(instance: dg.DagsterInstance, run_id: str):
    run = instance.get_run_by_id(run_id)
    (entry,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return dg.build_run_status_sensor_context(sensor_name=cleanup_on_failure.name, dagster_event=entry.dagster_event,
                                              dagster_instance=instance, dagster_run=run)


def test_run_failing_its_hygiene_gate_ends_with_scratch_removed_and_report_in_its_mlflow_run(
        sample_df, register, factory_resources, instance, s3_endpoint):
    ref = register(with_duplicate_rows(sample_df.iloc[:6000]))
    upload(s3_endpoint, ref.path)  # the bucket store copies the snapshot into the run's scratch
    resources = {**factory_resources, "z3": S3Z3Store(bucket=BUCKET, prefix=PREFIX, endpoint_url=s3_endpoint,
                                                      region_name="us-east-1")}
    failed = run_factory(resources, partition=ref.label, instance=instance)
    assert not failed.success and check_verdicts(failed)["duplicate_rows"] is False
    assert instance.get_run_by_id(failed.run_id).status == dg.DagsterRunStatus.FAILURE
    paths = resources["storage"].folder(failed.run_id)
    cached = paths.scratch / "z3" / ref.dataset_id / ref.snapshot_id / "data.parquet"
    assert cached.is_file(), "the failed run left its cache behind: the cleanup has work to do"

    client = MlflowClient(resources["mlflow"].tracking_uri)
    exp = client.get_experiment_by_name("z4-tests")
    (before,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`dagster.run_id` = '{failed.run_id}'")

    request = cleanup_on_failure(_failure_context(instance, failed.run_id))
    assert request.run_key == f"cleanup-{failed.run_id}"
    cleanup = cleanup_job.execute_in_process(run_config=request.run_config, resources=resources,
                                             instance=instance, tags=request.tags)
    assert cleanup.success

    assert not paths.scratch.exists()
    report = json.loads((paths.postrun / "cleanup_report.json").read_text())
    assert report["run_id"] == failed.run_id and report["complete"] is True
    assert report["cleaned_by"] == f"cleanup job run {cleanup.run_id}"
    removed = {r["path"]: r for r in report["removed"]}
    data = removed[f"z3/{ref.dataset_id}/{ref.snapshot_id}/data.parquet"]
    assert data["sha256"] == ref.manifest["hash"] and data["size"] == ref.data_path.stat().st_size

    # the failed run's record is finished: the cleanup never reopens it (status, end time, tags, metrics)
    after = client.get_run(before.info.run_id)
    assert (after.info.status, after.info.end_time, after.data.tags, after.data.metrics) == \
        (before.info.status, before.info.end_time, before.data.tags, before.data.metrics)
    assert after.info.status == "FAILED" and after.data.tags["z4.blocked_by"] == "duplicate_rows"
    assert not [a for a in client.list_artifacts(before.info.run_id) if a.path == "postrun"]
    # its records are in a new MLflow run, the cleanup job's, linked to it
    (run,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`dagster.run_id` = '{cleanup.run_id}'")
    assert run.info.run_id != before.info.run_id and run.info.status == "FINISHED"
    assert run.data.tags["cleanup_of"] == before.info.run_id
    assert run.data.tags["cleanup_of_dagster_run"] == failed.run_id
    assert run.data.tags["z4.cleanup.dagster_run_id"] == failed.run_id
    assert run.data.tags["z4.cleanup.by"] == f"cleanup job run {cleanup.run_id}"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "postrun")} == {
        "postrun/cleanup_report.json", "postrun/retention_manifest.json", "postrun/gates.json",
        "postrun/verdict.md"}  # the failed run's verdict page (z4_assets/verdict_page.py)
    (gate,) = json.loads((paths.postrun / "gates.json").read_text())  # the verdict, as every stage writes it
    assert (gate["name"], gate["passed"]) == ("cleanup_complete", True)
    assert run.data.metrics["cleanup.removed_files"] == len(report["removed"])


def test_run_failing_before_any_stage_was_tracked_still_gets_a_cleanup_record(
        sample_df, register, factory_resources, instance):
    ref = register(sample_df.iloc[:500])
    failed = run_factory(factory_resources, partition=f"no_such_dataset@{ref.snapshot_id}", instance=instance)
    assert not failed.success and "unknown dataset id 'no_such_dataset'" in \
        failed.failure_data_for_node("z3_snapshot").user_failure_data.description
    request = cleanup_on_failure(_failure_context(instance, failed.run_id))
    cleanup = cleanup_job.execute_in_process(run_config=request.run_config, resources=factory_resources,
                                             instance=instance)
    assert cleanup.success
    client = MlflowClient(factory_resources["mlflow"].tracking_uri)
    exp = client.get_experiment_by_name("z4-tests")
    (run,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`dagster.run_id` = '{cleanup.run_id}'")
    assert run.info.status == "FINISHED" and run.data.tags["cleanup_of_dagster_run"] == failed.run_id
    assert run.data.tags["cleanup_of"].startswith("none: the failed run recorded nothing in MLflow")
    assert run.data.tags["z4.cleanup.dagster_run_id"] == failed.run_id
    assert (factory_resources["storage"].folder(failed.run_id).postrun / "retention_manifest.json").is_file()


def test_cleanup_job_refuses_a_run_id_that_is_a_path(factory_resources, instance):
    result = cleanup_job.execute_in_process(
        run_config={"ops": {"cleanup_failed_run": {"config": {"failed_run_id": "../../etc"}}}},
        resources=factory_resources, instance=instance, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("cleanup_failed_run")
    assert "invalid run id '../../etc'" in failure.user_failure_data.description
