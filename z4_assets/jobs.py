"""Named jobs: model_factory turns one Z3 snapshot into a gated, tracked model."""

import dagster as dg

from z4_assets.k8s import factory_executor

FACTORY_GROUPS = ("snapshot", "hygiene", "training", "security", "fairness", "governance", "packaging",
                  "record", "promotion", "cleanup")

# In-process: every step shares one interpreter, so torch and MLflow are imported once per run
# instead of once per step (the multiprocess executor costs ~1 s per step before imports).
# On Kubernetes (Z4_EXECUTOR=k8s, see deploy/) each step runs in its own pod instead.
model_factory = dg.define_asset_job(
    "model_factory",
    selection=dg.AssetSelection.groups(*FACTORY_GROUPS),
    executor_def=factory_executor(),
    description="Verify the newest (or chosen) Z3 snapshot, check its hygiene, train and gate a model.",
)
