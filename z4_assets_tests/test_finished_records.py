"""Finished records stay finished (issue 15, item 7): a retry or a cleanup is a new MLflow run linked by a tag;
the original run's status, end time, tags and metrics are never touched. A crash is recorded as a crash."""

from __future__ import annotations

import pytest

from z4_assets.core.tracking import (CRASH_TAG, DAGSTER_RUN_TAG, ERROR_TAG, RETRY_OF_DAGSTER_TAG, RETRY_OF_TAG,
                                     RunRecorder, open_stage)


@pytest.fixture
def rec(tmp_path):
    return RunRecorder(f"sqlite:///{tmp_path / 'mlflow.db'}", "z4-records")


def frozen(rec: RunRecorder, run_id: str) -> tuple:
    run = rec.client.get_run(run_id)
    return run.info.status, run.info.end_time, dict(run.data.tags), dict(run.data.metrics), dict(run.data.params)


class _Snap:
    dataset_id, snapshot_id, label = "ds", "20260101T000000000000Z-aaaaaaaaaaaa", "ds@20260101T000000000000Z-aaaaaaaaaaaa"
    manifest = {"snapshot_at": "2026-01-01T00:00:00Z", "feature_groups": {}, "hash": "a" * 64, "contract_hash": "b" * 64}


def stage(rec, dagster_run_id, parent=None, name="trained_model"):
    return open_stage(rec, _Snap(), dagster_run_id, parent, "model_factory", "http://dagster", "deny-all", name)


def test_stages_of_one_dagster_run_share_its_mlflow_run_and_the_last_leaves_the_status(rec):
    with stage(rec, "run-1", name="z3_snapshot") as a:
        a.log(metrics={"m": 1})
    with stage(rec, "run-1", name="hygiene_report") as b:
        b.blocked_by = "duplicate_rows"
    assert a.run_id == b.run_id
    run = rec.client.get_run(a.run_id)
    assert run.info.status == "FAILED" and run.data.tags["z4.blocked_by"] == "duplicate_rows"


def test_a_retry_is_a_new_mlflow_run_linked_to_the_original_which_stays_as_it_was(rec):
    with stage(rec, "run-1") as first:
        first.blocked_by = "duplicate_rows"
    original = frozen(rec, first.run_id)
    with stage(rec, "retry-1", parent="run-1") as retry:
        retry.log(tags={"policy_decision": "PASS"})
    assert retry.run_id != first.run_id
    tags = rec.client.get_run(retry.run_id).data.tags
    assert (tags[RETRY_OF_TAG], tags[RETRY_OF_DAGSTER_TAG], tags[DAGSTER_RUN_TAG]) == (first.run_id, "run-1", "retry-1")
    assert rec.client.get_run(retry.run_id).info.status == "FINISHED"
    assert frozen(rec, first.run_id) == original
    # a retry of the retry links to the retry; a later stage of the retry reopens the retry's run only
    with stage(rec, "retry-2", parent="retry-1") as again:
        pass
    assert rec.client.get_run(again.run_id).data.tags[RETRY_OF_TAG] == retry.run_id
    assert frozen(rec, first.run_id) == original


def test_a_crash_is_recorded_as_a_crash_with_its_error_never_as_a_gate(rec):
    with pytest.raises(ValueError):
        with stage(rec, "run-c", name="fairness_report") as s:
            raise ValueError("bootstrap failed on http://user:secret@host/x\nsecond line")  # pragma: allowlist secret
    run = rec.client.get_run(s.run_id)
    assert run.info.status == "FAILED" and run.data.tags[CRASH_TAG] == "fairness_report"
    assert run.data.tags[ERROR_TAG] == ("run-c: error in fairness_report: ValueError: bootstrap failed on "
                                        "http://***@host/x")
    assert "z4.blocked_by" not in run.data.tags and "secret" not in str(run.data.tags)
    assert run.data.tags["policy_reasons"].startswith("error in fairness_report: ValueError")


def test_cleanup_records_in_a_new_run_and_a_dead_worker_closes_a_run_it_never_finished(rec, tmp_path):
    with stage(rec, "run-1") as first:
        first.blocked_by = "contract"
    original = frozen(rec, first.run_id)
    postrun = tmp_path / "postrun"
    postrun.mkdir()
    (postrun / "cleanup_report.json").write_text("{}")
    cleanup = rec.record_cleanup("run-1", "cleanup-run", postrun, {"z4.cleanup.by": "test"},
                                 {"cleanup.removed_files": 3}, passed=True)
    tags = rec.client.get_run(cleanup).data.tags
    assert cleanup != first.run_id and tags["cleanup_of"] == first.run_id and tags["cleanup_of_dagster_run"] == "run-1"
    assert frozen(rec, first.run_id) == original
    assert rec.close_interrupted(first.run_id, "run-1", "run worker died") is False  # blocked: left alone
    assert frozen(rec, first.run_id) == original
    running = rec.open("run-2", "z4-test", {})
    assert rec.close_interrupted(running, "run-2", "run worker died") is True
    assert rec.client.get_run(running).info.status == "KILLED"
    with stage(rec, "run-3", name="z3_snapshot"):  # the worker dies after this stage, before the next
        pass
    between = rec.find("run-3")
    assert rec.client.get_run(between).info.status == "FINISHED"
    assert rec.close_interrupted(between, "run-3", "run worker died") is True
    run = rec.client.get_run(between)
    assert run.info.status == "KILLED" and run.data.tags[ERROR_TAG] == "run-3: run worker died"
