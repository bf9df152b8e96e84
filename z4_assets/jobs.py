"""Named jobs: model_factory turns one Z3 snapshot into a gated, tracked model."""

import dagster as dg

FACTORY_GROUPS = ("snapshot", "hygiene", "training", "packaging", "record", "promotion")

# In-process: every step shares one interpreter, so torch and MLflow are imported once per run
# instead of once per step (the multiprocess executor costs ~1 s per step before imports).
model_factory = dg.define_asset_job(
    "model_factory",
    selection=dg.AssetSelection.groups(*FACTORY_GROUPS),
    executor_def=dg.in_process_executor,
    description="Verify the newest (or chosen) Z3 snapshot, check its hygiene, train and gate a model.",
)
