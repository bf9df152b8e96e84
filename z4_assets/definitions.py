"""Wires the factory's assets, jobs, sensors and resources together; no logic lives here."""

import os

import dagster as dg

from z4_assets.cleanup.assets import cleanup_report
from z4_assets.cleanup.job import cleanup_job
from z4_assets.fairness.assets import fairness_report
from z4_assets.governance.assets import model_card
from z4_assets.hygiene.assets import hygiene_report
from z4_assets.jobs import model_factory
from z4_assets.packaging.assets import promotion, signed_package
from z4_assets.record.assets import run_record
from z4_assets.resources import (FactoryStorage, MlflowTracking, NoopRevoker, PolicyStore, S3Z3Store,
                                 Z3Store)
from z4_assets.resources.broker import SnapshotBroker
from z4_assets.resources.signer import PackageSigner
from z4_assets.sensors.failures import cleanup_on_failure
from z4_assets.sensors.snapshots import z3_snapshot_sensor
from z4_assets.security.assets import adversarial_eval
from z4_assets.snapshot.assets import z3_snapshot
from z4_assets.training.assets import trained_model

DEFAULT_SIGNING_KEY = ".z4/keys/signing.pem"  # created by `z4 keygen`; gitignored


def z3_store_from_env():
    """The local folder Z4_Z3_ROOT, or an S3-compatible bucket when Z4_Z3_S3_BUCKET is set."""
    if os.environ.get("Z4_Z3_S3_BUCKET"):
        return S3Z3Store(bucket=os.environ["Z4_Z3_S3_BUCKET"], prefix=os.environ.get("Z4_Z3_S3_PREFIX", ""),
                         endpoint_url=os.environ.get("Z4_Z3_S3_ENDPOINT", ""),
                         region_name=os.environ.get("AWS_DEFAULT_REGION", ""))
    return Z3Store(root=os.environ.get("Z4_Z3_ROOT", "data/z3"))


def broker_from_env() -> SnapshotBroker:
    """The access broker: key from the secret env var when set, else the local key file."""
    from z4_assets.core.broker import KEY_ENV, key_file_from_env, log_path_from_env

    key = dg.EnvVar(KEY_ENV) if os.environ.get(KEY_ENV) else ""
    return SnapshotBroker(log_path=log_path_from_env(), key=key, key_file=key_file_from_env())


def resources_from_env() -> dict:
    """The embedded default: local folders and sqlite, each overridable by an env var."""
    return {
        "z3": z3_store_from_env(),
        "storage": FactoryStorage(root=os.environ.get("Z4_FACTORY_ROOT", "data/factory"),
                                  cache_root=os.environ.get("Z4_CACHE_ROOT", "")),
        "policy": PolicyStore(path=os.environ.get("Z4_POLICY", "")),
        "mlflow": MlflowTracking(tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", ""),
                                 experiment_name=os.environ.get("Z4_MLFLOW_EXPERIMENT", "z4-model-factory")),
        "signer": PackageSigner(mode=os.environ.get("Z4_SIGNING_MODE", "ec_key"),
                                private_key_path=os.environ.get("Z4_SIGNING_KEY", DEFAULT_SIGNING_KEY),
                                public_key_path=os.environ.get("Z4_SIGNING_PUBKEY", "")),
        "revoker": NoopRevoker(),
        "broker": broker_from_env(),
    }


defs = dg.Definitions(
    assets=[z3_snapshot, hygiene_report, trained_model, adversarial_eval, fairness_report, model_card,
            signed_package, run_record, promotion, cleanup_report],
    jobs=[model_factory, cleanup_job],
    sensors=[z3_snapshot_sensor, cleanup_on_failure],
    resources=resources_from_env(),
)
