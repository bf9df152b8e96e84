"""Wires the factory's assets, jobs and resources together; no logic lives here."""

import os

import dagster as dg

from z4_assets.hygiene.assets import hygiene_report
from z4_assets.jobs import model_factory
from z4_assets.packaging.assets import promotion, signed_package
from z4_assets.record.assets import run_record
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, Z3Store
from z4_assets.resources.signer import PackageSigner
from z4_assets.snapshot.assets import z3_snapshot
from z4_assets.training.assets import trained_model


DEFAULT_SIGNING_KEY = ".z4/keys/signing.pem"  # created by `z4 keygen`; gitignored


def resources_from_env() -> dict:
    """The embedded default: local folders and sqlite, each overridable by an env var."""
    return {
        "z3": Z3Store(root=os.environ.get("Z4_Z3_ROOT", "data/z3")),
        "storage": FactoryStorage(root=os.environ.get("Z4_FACTORY_ROOT", "data/factory")),
        "policy": PolicyStore(path=os.environ.get("Z4_POLICY", "")),
        "mlflow": MlflowTracking(tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", ""),
                                 experiment_name=os.environ.get("Z4_MLFLOW_EXPERIMENT", "z4-model-factory")),
        "signer": PackageSigner(mode=os.environ.get("Z4_SIGNING_MODE", "ec_key"),
                                private_key_path=os.environ.get("Z4_SIGNING_KEY", DEFAULT_SIGNING_KEY),
                                public_key_path=os.environ.get("Z4_SIGNING_PUBKEY", "")),
    }


defs = dg.Definitions(
    assets=[z3_snapshot, hygiene_report, trained_model, signed_package, run_record, promotion],
    jobs=[model_factory],
    resources=resources_from_env(),
)
