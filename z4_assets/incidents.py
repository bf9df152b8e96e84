"""The run's incident, opened where the run failed: by the failed step itself (a failure hook on
model_factory, so a bare `dagster job execute` with no daemon leaves one) or by the cleanup job,
whichever comes first; the other finds it (core/incident.py: one record per run)."""

import dagster as dg


def open_run_incident(context, folder, partition: str, storage, revocation_failed: list[str],
                      cleanup_run_id: str | None = None) -> dict:
    """Open (or find) the run's incident from its stage folders and its STEP_FAILURE events; one
    audit event the first time. CONTEXT: the cleanup op's, or a failure hook's."""
    from z4_assets.core.incident import build_incident, open_incident
    from z4_assets.core.settings import Settings
    from z4_assets.core.tracking import redact_uri

    settings = Settings.from_env()
    errors = []
    for entry in context.instance.all_logs(folder.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = entry.dagster_event.step_failure_data.error if entry.dagster_event else None
        errors.append({"step": entry.step_key, "error_class": error.cls_name if error else None,
                       "message": redact_uri(error.message.strip()[:500]) if error else ""})
    base = settings.dagster_url.rstrip("/")
    links = {"dagster_run": f"{base}/runs/{folder.run_id}",
             **({"cleanup_run": f"{base}/runs/{cleanup_run_id}"} if cleanup_run_id else {}),
             "run_folder": str(folder.run_dir)}
    record, new = open_incident(folder, build_incident(folder, partition, errors, links, revocation_failed),
                                settings.incident_url)
    if new:  # one incident per run, one event: a second cleanup reuses both
        from z4_assets.audit_events import incident_opened

        incident_opened(context, storage, folder.run_id, partition, record)
    state = "opened" if new else "already open"
    context.log.info(f"incident {state} for run {folder.run_id}: {record['title']} "
                     f"(runbook {record['runbook']}; delivery {record['delivery']['status']})")
    return record


@dg.failure_hook(required_resource_keys={"storage"})
def incident_on_failure(context: dg.HookContext):
    """A step of model_factory failed (a gate blocked it, it crashed or timed out): the run's one
    incident is opened now, in that step's process, so a bare `dagster job execute` with no daemon
    leaves it too. The cleanup job (the sensor, `z4 run`, `z4 cleanup`) finds it and adds nothing.
    A run launched without a partition is refused in one line and leaves no folder, nor an incident.
    Never raises: the incident must not change how the step ended."""
    try:
        run = context.instance.get_run_by_id(context.run_id)
        partition = (run.tags.get("dagster/partition") if run else None) or ""
        if not partition:
            return
        storage = context.resources.storage
        open_run_incident(context, storage.folder(context.run_id), partition, storage, [])
    except Exception as e:  # noqa: BLE001
        context.log.warning(f"incident for run {context.run_id} not opened by the failed step "
                            f"({type(e).__name__}); the cleanup job opens it")
