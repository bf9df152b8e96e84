"""The vault the resources read from: the run's short-lived login and the secrets it reads, held in memory only.

Only the address and the secrets' paths are plain config. The AppRole secret id and an injected
token come only through `dg.EnvVar` or a file the deployment mounts (deploy/k8s/vault-hsm.yaml),
read at call time and never stored in config, a tag, a log or the ledger.
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

MLFLOW_ENV = {"username": "MLFLOW_TRACKING_USERNAME", "password": "MLFLOW_TRACKING_PASSWORD"}  # pragma: allowlist secret


class VaultSecrets(dg.Config):
    """A Vault-API server (HashiCorp Vault, OpenBao) the factory logs in to once per run.

    Config nested in the resources that read secrets (broker, mlflow) and in the revoker, not a resource
    of its own: a nested resource would make every asset need a context manager when called directly."""

    address: str = Field(description="Z4_VAULT_ADDR, e.g. https://vault.internal:8200")
    factory_root: str = Field(description="the factory root: each run's ledger (token accessor, lease ids) lives "
                                          "in its scratch there, for cleanup to revoke")
    role_id: str = Field("", description="AppRole role id (Z4_VAULT_ROLE_ID)")
    secret_id: str = Field("", description="AppRole secret id: only via dg.EnvVar('Z4_VAULT_SECRET_ID')")
    secret_id_file: str = Field("", description="file holding the AppRole secret id, mounted by the deployment "
                                                "(Z4_VAULT_SECRET_ID_FILE)")
    token: str = Field("", description="a token the deployment injects (only via dg.EnvVar('Z4_VAULT_TOKEN')); "
                                       "each run uses a short-lived child token of it")
    namespace: str = Field("", description="Vault Enterprise namespace (Z4_VAULT_NAMESPACE)")
    token_ttl: str = Field("30m", description="TTL of a run's child token in token mode (Z4_VAULT_TOKEN_TTL); in "
                                              "AppRole mode the role's token_ttl applies")
    pseudonym_path: str = Field("secret/z4/pseudonym", description="KV v2 secret holding `key`, the "
                                                                   "pseudonymisation key (Z4_VAULT_PSEUDONYM_PATH)")
    mlflow_path: str = Field("", description="KV v2 secret holding MLflow's `username` and `password` "
                                             "(Z4_VAULT_MLFLOW_PATH); empty: MLflow needs none")

    def credentials(self):
        from z4_assets.core.errors import Z4Error
        from z4_assets.core.vault import VaultCredentials

        secret_id = self.secret_id
        if not secret_id and self.secret_id_file:
            try:
                secret_id = Path(self.secret_id_file).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise Z4Error(f"cannot read the AppRole secret id: {e.strerror}", self.secret_id_file) from None
        return VaultCredentials(address=self.address, role_id=self.role_id, secret_id=secret_id,
                                token=self.token, namespace=self.namespace, token_ttl=self.token_ttl)

    def session(self, run_id: str):
        """The run's vault session in this process (core.vault.RunSecrets); logs in on first use."""
        from z4_assets.core.cleanup import RunScratch
        from z4_assets.core.run_folder import RunFolder
        from z4_assets.core.vault import run_session

        scratch = RunScratch(RunFolder(self.factory_root, run_id))
        return run_session(run_id, self.credentials(), scratch.record_lease)

    def pseudonym_key(self, run_id: str) -> str:
        return self.session(run_id).value(self.pseudonym_path, "key")

    def export_mlflow_credentials(self, run_id: str) -> list[str]:
        """Put the MLflow credentials where MLflow's client reads them (this process's environment,
        never a file); returns the variables' names. `forget` takes them out again."""
        import os

        if not self.mlflow_path:
            return []
        session = self.session(run_id)
        for key, var in MLFLOW_ENV.items():
            os.environ[var] = session.value(self.mlflow_path, key)
        return sorted(MLFLOW_ENV.values())

    def forget(self, run_id: str) -> None:
        """The run is over in this process: drop its session, its secrets and the MLflow variables."""
        import os

        from z4_assets.core.vault import forget

        forget(run_id)
        if self.mlflow_path:
            for var in MLFLOW_ENV.values():
                os.environ.pop(var, None)

    def revoke(self, lease: dict) -> str:
        from z4_assets.core.vault import revoke

        return revoke(lease, self.credentials())

    def describe(self) -> str:
        """What the run record says about where its secrets came from (no credential in it)."""
        kind = "AppRole" if self.role_id else "injected token"
        return f"vault {self.address} ({kind} login per run)"
