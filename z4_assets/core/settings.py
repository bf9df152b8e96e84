"""The factory's settings, read once from the environment: every variable, its default and what it is.

`definitions.py` builds the Dagster resources from one `Settings`, the `z4` CLI and the benchmark's
bare side read the same object, so no variable is re-read elsewhere with its own default. Secrets
are never held here: for the pseudonymisation key only whether it is set is recorded, and the
resources take it through `dg.EnvVar`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping

DEFAULT_SIGNING_KEY = ".z4/keys/signing.pem"      # created by `z4 keygen`; gitignored
DEFAULT_PSEUDONYM_KEY_FILE = ".z4/keys/pseudonym.key"
PSEUDONYM_KEY_ENV = "Z4_PSEUDONYM_KEY"
AUDIT_URL_ENV, OPENLINEAGE_URL_ENV = "Z4_AUDIT_URL", "OPENLINEAGE_URL"
PKCS11_PIN_ENV = "Z4_PKCS11_PIN"             # the token PIN (secret: dg.EnvVar, never read here)
VAULT_SECRET_ID_ENV = "Z4_VAULT_SECRET_ID"   # the AppRole secret id (secret: dg.EnvVar, never read here)
VAULT_TOKEN_ENV = "Z4_VAULT_TOKEN"           # a token the deployment injects (secret: dg.EnvVar)
# Variables that hold a secret, or a URL that may carry one: the tools the factory starts for its own
# work (cyclonedx-py, git) get the environment without them (`child_env`). MLflow's credentials are
# put into this process's environment from the vault (resources/vault.py) and leave it with the run.
SECRET_ENV = (PSEUDONYM_KEY_ENV, PKCS11_PIN_ENV, VAULT_SECRET_ID_ENV, VAULT_TOKEN_ENV, AUDIT_URL_ENV,
              OPENLINEAGE_URL_ENV, "VAULT_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
              "MLFLOW_TRACKING_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """ENV (this process's environment by default) without SECRET_ENV: for a tool the factory runs."""
    return {k: v for k, v in (os.environ if env is None else env).items() if k not in SECRET_ENV}


# The Z3 registrar's key signs snapshot manifests; it is not the factory's and by default does not live
# in the project beside it (`z4 keygen --z3`). The factory holds only its public key (Z4_Z3_PUBKEY).
DEFAULT_Z3_SIGNING_KEY = "~/.config/z4-z3/z3-signing.pem"


@dataclass(frozen=True)
class Settings:
    z3_root: str = "data/z3"                       # Z4_Z3_ROOT: the local Z3 snapshot root
    z3_s3_bucket: str = ""                         # Z4_Z3_S3_BUCKET: read Z3 from a bucket instead
    z3_s3_prefix: str = ""                         # Z4_Z3_S3_PREFIX
    z3_s3_endpoint: str = ""                       # Z4_Z3_S3_ENDPOINT (MinIO, Ceph RGW)
    aws_region: str = ""                           # AWS_DEFAULT_REGION
    factory_root: str = "data/factory"             # Z4_FACTORY_ROOT: run evidence, outcomes, baselines
    cache_root: str = ""                           # Z4_CACHE_ROOT: SBOM cache (default <factory root>/cache)
    policy: str = ""                               # Z4_POLICY: thresholds (default: the packaged policy.yaml)
    mlflow_tracking_uri: str = ""                  # MLFLOW_TRACKING_URI (default sqlite:///<cwd>/mlflow.db)
    mlflow_experiment: str = "z4-model-factory"    # Z4_MLFLOW_EXPERIMENT
    signing_mode: str = "ec_key"                   # Z4_SIGNING_MODE: ec_key | pkcs11 | certificate | sigstore
    signing_key: str = DEFAULT_SIGNING_KEY         # Z4_SIGNING_KEY: private key (EC P-256 PEM)
    signing_pubkey: str = ""                       # Z4_SIGNING_PUBKEY (default <key stem>.pub.pem)
    signing_cert: str = ""                         # Z4_SIGNING_CERT: certificate mode, the leaf certificate PEM
    signing_chain: str = ""                        # Z4_SIGNING_CHAIN: certificate mode, intermediates' PEMs, ':'-separated
    signing_ca: str = ""                           # Z4_SIGNING_CA: certificate mode, the CA root(s) to verify against
    pkcs11_uri: str = ""                           # Z4_PKCS11_URI: pkcs11 mode, the key's URI (never with the PIN)
    pkcs11_pin_file: str = ""                      # Z4_PKCS11_PIN_FILE: pkcs11 mode, the PIN as a mounted file
    pkcs11_pin_set: bool = False                   # Z4_PKCS11_PIN is set (its value is never read here)
    z3_signing_key: str = ""                       # Z4_Z3_SIGNING_KEY: Z3 private key `z4 snapshot add` signs with
    z3_pubkey: str = ""                            # Z4_Z3_PUBKEY: Z3 public key the factory checks snapshots with
    pseudonym_key_set: bool = False                # Z4_PSEUDONYM_KEY is set (its value is never read here)
    pseudonym_key_file: str = DEFAULT_PSEUDONYM_KEY_FILE  # Z4_PSEUDONYM_KEY_FILE
    access_log: str = ""                           # Z4_ACCESS_LOG (default <factory root>/access_log.jsonl)
    sensor_interval_seconds: int = 30              # Z4_SENSOR_INTERVAL_SECONDS
    executor: str = "in_process"                   # Z4_EXECUTOR: in_process | k8s (one pod per step)
    k8s_steps: str = ""                            # Z4_K8S_STEPS: per-step pod policy (default deploy/steps.yaml)
    dagster_url: str = "http://127.0.0.1:3000"     # Z4_DAGSTER_URL: the Dagster UI, for links from MLflow
    incident_url: str = ""                         # Z4_INCIDENT_URL: POST each run's incident record here (JSON)
    mlflow_url: str = ""                           # Z4_MLFLOW_URL: the MLflow UI, for links from Dagster and the
                                                   # verdict page (default: the tracking URI when http(s),
                                                   # else http://127.0.0.1:5000, where `mlflow ui` listens)
    package_max_bytes: int = 1 << 30               # Z4_PACKAGE_MAX_BYTES: a package archive's members may add up to
    package_max_members: int = 10_000              # Z4_PACKAGE_MAX_MEMBERS: ... and number this many (core/packaging/_archive.py)
    execution: str = "host"                        # Z4_EXECUTION: host | container (the signed training image)
    image: str = "localhost/z4-train:latest"       # Z4_IMAGE: the training image container runs start
    image_evidence: str = "build/image"            # Z4_IMAGE_EVIDENCE: its SBOM, scan and signed statement
    vuln_db: str = ""                              # Z4_VULN_DB: the OSV database file the image scan reads
    # Z9 (core/audit): the chain is always written under <factory root>/audit/; the URLs may carry
    # credentials, so only whether each is set is held here and the resource takes it through dg.EnvVar
    audit_url_set: bool = False                    # Z4_AUDIT_URL: POST every audit event (CloudEvents JSON) there
    openlineage_url_set: bool = False              # OPENLINEAGE_URL: POST OpenLineage run events to <url>/api/v1/lineage
    actor_oidc_subject: str = ""                   # Z4_ACTOR_OIDC_SUBJECT: the authenticated actor (CI/deployment)
    vault_addr: str = ""                           # Z4_VAULT_ADDR: secrets from a Vault-API server; empty = local files
    vault_role_id: str = ""                        # Z4_VAULT_ROLE_ID: the factory's AppRole
    vault_secret_id_file: str = ""                 # Z4_VAULT_SECRET_ID_FILE: its secret id, mounted as a file
    vault_secret_id_set: bool = False              # Z4_VAULT_SECRET_ID is set (its value is never read here)
    vault_token_set: bool = False                  # Z4_VAULT_TOKEN is set (its value is never read here)
    vault_namespace: str = ""                      # Z4_VAULT_NAMESPACE (Vault Enterprise)
    vault_token_ttl: str = "30m"                   # Z4_VAULT_TOKEN_TTL: a run's child token in token mode
    vault_pseudonym_path: str = "secret/z4/pseudonym"  # Z4_VAULT_PSEUDONYM_PATH: KV v2, key `key`
    vault_mlflow_path: str = ""                    # Z4_VAULT_MLFLOW_PATH: KV v2, keys `username`, `password`

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        names = {
            "z3_root": "Z4_Z3_ROOT", "z3_s3_bucket": "Z4_Z3_S3_BUCKET", "z3_s3_prefix": "Z4_Z3_S3_PREFIX",
            "z3_s3_endpoint": "Z4_Z3_S3_ENDPOINT", "aws_region": "AWS_DEFAULT_REGION",
            "factory_root": "Z4_FACTORY_ROOT", "cache_root": "Z4_CACHE_ROOT", "policy": "Z4_POLICY",
            "mlflow_tracking_uri": "MLFLOW_TRACKING_URI", "mlflow_experiment": "Z4_MLFLOW_EXPERIMENT",
            "signing_mode": "Z4_SIGNING_MODE", "signing_key": "Z4_SIGNING_KEY", "signing_pubkey": "Z4_SIGNING_PUBKEY",
            "signing_cert": "Z4_SIGNING_CERT", "signing_chain": "Z4_SIGNING_CHAIN", "signing_ca": "Z4_SIGNING_CA", "pkcs11_uri": "Z4_PKCS11_URI",
            "pkcs11_pin_file": "Z4_PKCS11_PIN_FILE",
            "z3_signing_key": "Z4_Z3_SIGNING_KEY", "z3_pubkey": "Z4_Z3_PUBKEY",
            "pseudonym_key_file": "Z4_PSEUDONYM_KEY_FILE", "access_log": "Z4_ACCESS_LOG",
            "sensor_interval_seconds": "Z4_SENSOR_INTERVAL_SECONDS", "executor": "Z4_EXECUTOR",
            "k8s_steps": "Z4_K8S_STEPS",
            "dagster_url": "Z4_DAGSTER_URL", "incident_url": "Z4_INCIDENT_URL", "mlflow_url": "Z4_MLFLOW_URL",
            "package_max_bytes": "Z4_PACKAGE_MAX_BYTES", "package_max_members": "Z4_PACKAGE_MAX_MEMBERS",
            "execution": "Z4_EXECUTION", "image": "Z4_IMAGE", "image_evidence": "Z4_IMAGE_EVIDENCE",
            "vuln_db": "Z4_VULN_DB",
            "vault_addr": "Z4_VAULT_ADDR", "vault_role_id": "Z4_VAULT_ROLE_ID",
            "vault_secret_id_file": "Z4_VAULT_SECRET_ID_FILE", "vault_namespace": "Z4_VAULT_NAMESPACE",
            "vault_token_ttl": "Z4_VAULT_TOKEN_TTL", "vault_pseudonym_path": "Z4_VAULT_PSEUDONYM_PATH",
            "vault_mlflow_path": "Z4_VAULT_MLFLOW_PATH",
        }
        values: dict = {}
        for f in fields(cls):
            var = names.get(f.name)
            if var and env.get(var):
                values[f.name] = int(env[var]) if f.type == "int" else env[var]
        values["pseudonym_key_set"] = bool(env.get(PSEUDONYM_KEY_ENV))
        values["audit_url_set"] = bool(env.get(AUDIT_URL_ENV))
        values["openlineage_url_set"] = bool(env.get(OPENLINEAGE_URL_ENV))
        values["actor_oidc_subject"] = env.get("Z4_ACTOR_OIDC_SUBJECT", "")
        values["pkcs11_pin_set"] = bool(env.get(PKCS11_PIN_ENV))
        values["vault_secret_id_set"] = bool(env.get(VAULT_SECRET_ID_ENV))
        values["vault_token_set"] = bool(env.get(VAULT_TOKEN_ENV))
        return cls(**values)

    @property
    def package_limits(self):
        """ArchiveLimits for reading a package (`z4 verify`, promotion, `z4 load`)."""
        from z4_assets.core.packaging import ArchiveLimits

        return ArchiveLimits(self.package_max_bytes, self.package_max_members)

    @property
    def access_log_path(self) -> str:
        return self.access_log or str(Path(self.factory_root) / "access_log.jsonl")

    @property
    def signing_pubkey_path(self) -> str:
        if self.signing_pubkey:
            return self.signing_pubkey
        p = Path(self.signing_key)
        return str(p.with_name(p.stem + ".pub.pem"))
