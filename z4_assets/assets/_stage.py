"""What every factory asset shares: its definition from the stage table, and the StageRun it hands its stage."""

from __future__ import annotations

import dagster as dg

from z4_assets.checks import blocking_specs
from z4_assets.core.stage_run import StageRun
from z4_assets.core.stages import Stage
from z4_assets.partitions import snapshots

CODE_VERSION = "2"


def factory_asset(stage: Stage, kinds: set[str], **kwargs):
    """An asset of the model_factory: partitioned by snapshot, its outcome kept by the outcome store,
    one blocking check per gate the stage table gives it."""
    return dg.asset(name=stage.asset, group_name=stage.group, kinds=kinds, code_version=CODE_VERSION,
                    partitions_def=snapshots, io_manager_key="outcomes", description=stage.description,
                    check_specs=blocking_specs(stage), **kwargs)


def stage_run(context: dg.AssetExecutionContext, snapshot, storage, policy, broker) -> StageRun:
    return StageRun(run_id=context.run_id, snapshot=snapshot, policy=policy.for_dataset(snapshot.dataset_id),
                    factory=storage.factory(), read=broker.reader(context),
                    reader=context.asset_key.to_user_string())
