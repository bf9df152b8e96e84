"""Wires the factory's assets, jobs and resources together; no logic lives here."""

import os

import dagster as dg

from z4_assets.hygiene.assets import hygiene_report
from z4_assets.jobs import model_factory
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, Z3Store
from z4_assets.security.assets import adversarial_eval
from z4_assets.snapshot.assets import z3_snapshot
from z4_assets.training.assets import trained_model


def resources_from_env() -> dict:
    """The embedded default: local folders and sqlite, each overridable by an env var."""
    return {
        "z3": Z3Store(root=os.environ.get("Z4_Z3_ROOT", "data/z3")),
        "storage": FactoryStorage(root=os.environ.get("Z4_FACTORY_ROOT", "data/factory")),
        "policy": PolicyStore(path=os.environ.get("Z4_POLICY", "")),
        "mlflow": MlflowTracking(tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", ""),
                                 experiment_name=os.environ.get("Z4_MLFLOW_EXPERIMENT", "z4-model-factory")),
    }


defs = dg.Definitions(
    assets=[z3_snapshot, hygiene_report, trained_model, adversarial_eval],
    jobs=[model_factory],
    resources=resources_from_env(),
)
