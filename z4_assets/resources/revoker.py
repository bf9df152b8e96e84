"""Who revokes the tokens and leases issued to a run when it ends: nobody locally, Vault as the option.

`NoopRevoker` is the local default (nothing is issued to a run here). `VaultLeaseRevoker` is the
documented option for a deployment whose runs get dynamic credentials from HashiCorp Vault: it
calls PUT <address>/v1/sys/leases/revoke with the lease id. It is exercised here only against a
loopback fake of that endpoint (no Vault server can run on this machine), never a real Vault.
"""

import json
import os
import urllib.request

import dagster as dg
from pydantic import Field


class TokenRevoker(dg.ConfigurableResource):
    """Revokes one lease recorded in a run's ledger; returns a short status, never a secret."""

    def revoke(self, lease: dict) -> str:
        raise NotImplementedError(f"{type(self).__name__} cannot revoke leases")


class NoopRevoker(TokenRevoker):
    """Local default: no token is ever issued to a run, so there is nothing to revoke."""

    def revoke(self, lease: dict) -> str:
        from z4_assets.core.cleanup import no_revoker

        return no_revoker(lease)


class VaultLeaseRevoker(TokenRevoker):
    """Revokes Vault leases (dynamic database/cloud credentials) issued to a run."""

    address: str = Field(description="Vault address, e.g. https://vault.internal:8200")
    token_env: str = Field("VAULT_TOKEN", description="env var holding a token allowed to revoke leases "
                                                      "(the token is read at call time, never stored)")
    namespace: str = Field("", description="Vault Enterprise namespace; empty for none")
    timeout_seconds: float = Field(10.0, description="HTTP timeout per revocation")

    def revoke(self, lease: dict) -> str:
        token = os.environ.get(self.token_env, "")
        if not token:
            raise PermissionError(f"{self.token_env} is not set")
        body = json.dumps({"lease_id": str(lease["lease_id"])}).encode()
        headers = {"X-Vault-Token": token, "Content-Type": "application/json"}
        if self.namespace:
            headers["X-Vault-Namespace"] = self.namespace
        if not self.address.startswith(("https://", "http://")):
            raise ValueError("vault address must be an http(s) URL")
        req = urllib.request.Request(f"{self.address.rstrip('/')}/v1/sys/leases/revoke", data=body,
                                     headers=headers, method="PUT")
        with urllib.request.urlopen(req, timeout=self.timeout_seconds) as resp:  # nosec B310 # scheme checked above
            return f"revoked (HTTP {resp.status})"
