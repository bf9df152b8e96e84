"""Who revokes the tokens and leases issued to a run when it ends: the vault that issued them.

`NoopRevoker` is the air-gapped default: nothing is issued to a local run, and a lease recorded in
a ledger anyway is a failed revocation (never passed over). `VaultRevoker` revokes a run's token
(by accessor) and each secret lease in the vault, and checks there that each one is gone.
"""

import dagster as dg

from z4_assets.resources.vault import VaultSecrets


class TokenRevoker(dg.ConfigurableResource):
    """Revokes one lease recorded in a run's ledger; returns a short status, never a secret."""

    def revoke(self, lease: dict) -> str:
        raise NotImplementedError(f"{type(self).__name__} cannot revoke leases")

    def forget(self, run_id: str) -> None:
        """The run's cleanup is done in this process: drop whatever it still holds in memory."""


class NoopRevoker(TokenRevoker):
    """Local default: no token is ever issued to a run, so there is nothing to revoke."""

    def revoke(self, lease: dict) -> str:
        from z4_assets.core.cleanup import no_revoker

        return no_revoker(lease)


class VaultRevoker(TokenRevoker):
    """Revokes a run's vault token and leases with a fresh login of the factory's own credential."""

    vault: VaultSecrets

    def revoke(self, lease: dict) -> str:
        return self.vault.revoke(lease)

    def forget(self, run_id: str) -> None:
        self.vault.forget(run_id)
