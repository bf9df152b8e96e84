"""What every factory asset shares: its definition from the stage table, and the StageRun it hands its stage."""

from __future__ import annotations

import functools

import dagster as dg

from z4_assets.checks import blocking_specs
from z4_assets.core.stage_run import StageRun
from z4_assets.core.stages import Stage
from z4_assets.partitions import snapshots

CODE_VERSION = "2"


def factory_asset(stage: Stage, kinds: set[str], **kwargs):
    """An asset of the model_factory: partitioned by snapshot, its outcome kept by the outcome store,
    one blocking check per gate the stage table gives it; bounded by the policy's time-out and retries."""
    asset = dg.asset(name=stage.asset, group_name=stage.group, kinds=kinds, code_version=CODE_VERSION,
                     partitions_def=snapshots, io_manager_key="outcomes", description=stage.description,
                     check_specs=blocking_specs(stage), **kwargs)
    return lambda fn: asset(bounded(stage.asset)(fn))


def bounded(step: str):
    """The step under its policy time-out (runs.step_timeout_seconds), tried again on a transient
    failure (core/bounds.py). A time-out is a one-line Failure that is never retried by Dagster."""

    def decorate(fn):
        @functools.wraps(fn)
        def step_fn(context, **kwargs):
            from z4_assets.core.bounds import StepTimedOut, deadline, with_retries
            from z4_assets.core.errors import Z4Error

            dataset_id = (context.partition_key or "").partition("@")[0] if context.has_partition_key else ""
            try:
                rules = kwargs["policy"].for_dataset(dataset_id).runs
            except Z4Error:  # the stage reads the policy itself and says why it cannot (one line, audited as
                from z4_assets.core.policy_trace import shipped_defaults  # a crash): bound it by the shipped rules

                rules = shipped_defaults().runs
            limit = rules.timeout(step)

            def retrying(n, e, wait):
                context.log.warning(f"{step}: transient failure ({type(e).__name__}: {str(e)[:200]}); "
                                    f"try {n + 1} of {rules.transient_attempts} in {wait:g} s")

            try:
                with deadline(step, limit):
                    return with_retries(lambda: fn(context, **kwargs), rules.transient_attempts,
                                        rules.transient_backoff_seconds, rules.transient_backoff_max_seconds,
                                        retrying)
            except StepTimedOut as e:
                raise dg.Failure(description=str(e), allow_retries=False,
                                 metadata={"z4.failure": "time-out", "limit_seconds": limit,
                                           "stopped_after_seconds": round(e.stopped_after, 3)}) from None

        return step_fn

    return decorate


def stage_run(context: dg.AssetExecutionContext, snapshot, storage, policy, broker) -> StageRun:
    return StageRun(run_id=context.run_id, snapshot=snapshot, policy=policy.for_dataset(snapshot.dataset_id),
                    factory=storage.factory(), read=broker.reader(context),
                    reader=context.asset_key.to_user_string())
