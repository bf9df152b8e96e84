"""Wires the factory's assets, jobs, sensors and resources together from one Settings; no logic lives here."""

import dagster as dg

from z4_assets.assets import FACTORY_ASSETS
from z4_assets.core.process import fast_exit
from z4_assets.core.settings import (AUDIT_URL_ENV, OPENLINEAGE_URL_ENV, PKCS11_PIN_ENV, PSEUDONYM_KEY_ENV,
                                      VAULT_SECRET_ID_ENV, VAULT_TOKEN_ENV, Settings)
from z4_assets.jobs import cleanup_job, model_factory
from z4_assets.outcome_store import OutcomeStore
from z4_assets.resources import (FactoryStorage, MlflowTracking, NoopRevoker, PolicyStore, S3Z3Store,
                                 SnapshotBroker, VaultRevoker, VaultSecrets, Z3Store)
from z4_assets.resources.signer import PackageSigner
from z4_assets.sensors.failures import cleanup_on_failure
from z4_assets.sensors.snapshots import z3_snapshot_sensor
from z4_assets.verdict_page import verdict_spec


def vault_from(settings: Settings) -> VaultSecrets | None:
    """The vault when Z4_VAULT_ADDR is set; its secret id and token only through dg.EnvVar or a mounted file."""
    if not settings.vault_addr:
        return None
    return VaultSecrets(address=settings.vault_addr, factory_root=settings.factory_root,
                        role_id=settings.vault_role_id, secret_id_file=settings.vault_secret_id_file,
                        secret_id=dg.EnvVar(VAULT_SECRET_ID_ENV) if settings.vault_secret_id_set else "",
                        token=dg.EnvVar(VAULT_TOKEN_ENV) if settings.vault_token_set else "",
                        namespace=settings.vault_namespace, token_ttl=settings.vault_token_ttl,
                        pseudonym_path=settings.vault_pseudonym_path, mlflow_path=settings.vault_mlflow_path)


def resources_from(settings: Settings) -> dict:
    """The embedded default (local folders, sqlite), each part overridable by its setting."""
    vault = vault_from(settings)
    z3 = (S3Z3Store(bucket=settings.z3_s3_bucket, prefix=settings.z3_s3_prefix,
                    endpoint_url=settings.z3_s3_endpoint, region_name=settings.aws_region,
                    public_key=settings.z3_pubkey)
          if settings.z3_s3_bucket else Z3Store(root=settings.z3_root, public_key=settings.z3_pubkey))
    return {
        "z3": z3,
        "storage": FactoryStorage(root=settings.factory_root, cache_root=settings.cache_root,
                                  audit_url=dg.EnvVar(AUDIT_URL_ENV) if settings.audit_url_set else "",
                                  openlineage_url=dg.EnvVar(OPENLINEAGE_URL_ENV) if settings.openlineage_url_set else "",
                                  actor_oidc_subject=settings.actor_oidc_subject),
        "outcomes": OutcomeStore(root=settings.factory_root),
        "policy": PolicyStore(path=settings.policy),
        "mlflow": MlflowTracking(tracking_uri=settings.mlflow_tracking_uri, experiment_name=settings.mlflow_experiment,
                                 dagster_url=settings.dagster_url, mlflow_url=settings.mlflow_url, vault=vault),
        "signer": PackageSigner(mode=settings.signing_mode, private_key_path=settings.signing_key,
                                public_key_path=settings.signing_pubkey, package_max_bytes=settings.package_max_bytes,
                                package_max_members=settings.package_max_members, pkcs11_uri=settings.pkcs11_uri,
                                pkcs11_pin=dg.EnvVar(PKCS11_PIN_ENV) if settings.pkcs11_pin_set else "",
                                pkcs11_pin_file=settings.pkcs11_pin_file, certificate=settings.signing_cert,
                                certificate_chain=[c for c in settings.signing_chain.split(":") if c],
                                ca_roots=[c for c in settings.signing_ca.split(":") if c]),
        "revoker": VaultRevoker(vault=vault) if vault is not None else NoopRevoker(),
        # the key is a secret: only through dg.EnvVar, never as a value in config
        "broker": SnapshotBroker(log_path=settings.access_log_path,
                                 key=dg.EnvVar(PSEUDONYM_KEY_ENV) if settings.pseudonym_key_set else "",
                                 key_file=settings.pseudonym_key_file, vault=vault),
    }


def resources_from_env() -> dict:
    return resources_from(Settings.from_env())


fast_exit()  # a run worker skips the interpreter's last full garbage collection (core/process.py)

defs = dg.Definitions(
    assets=[*FACTORY_ASSETS, verdict_spec],
    jobs=[model_factory, cleanup_job],
    sensors=[z3_snapshot_sensor, cleanup_on_failure],
    resources=resources_from_env(),
)
