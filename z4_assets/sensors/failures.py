"""cleanup_on_failure: a model_factory run that fails (a blocking gate, a crash) still gets its cleanup."""

import dagster as dg

from z4_assets.jobs import cleanup_job, model_factory
from z4_assets.sensors.snapshots import INTERVAL


def cleanup_request(failed_run_id: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"cleanup-{failed_run_id}",
        run_config={"ops": {"cleanup_failed_run": {"config": {"failed_run_id": failed_run_id}}}},
        tags={"z4/cleanup_of": failed_run_id},
    )


@dg.run_failure_sensor(monitored_jobs=[model_factory], request_job=cleanup_job,
                       minimum_interval_seconds=INTERVAL, default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Launches the cleanup job for every failed model_factory run.")
def cleanup_on_failure(context: dg.RunFailureSensorContext):
    context.log.info(f"run {context.dagster_run.run_id} failed: launching its cleanup")
    return cleanup_request(context.dagster_run.run_id)
