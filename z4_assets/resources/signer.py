"""The package signer: an offline EC P-256 key by default, keyless Sigstore as an option."""

from pathlib import Path

import dagster as dg
from pydantic import Field


class PackageSigner(dg.ConfigurableResource):
    """Where the signing key lives; the key's bytes are never logged, tagged or packaged."""

    mode: str = Field("ec_key", description="ec_key (offline, default) or sigstore (keyless, needs OIDC)")
    private_key_path: str = Field(description="PEM private key (EC P-256); from Z4_SIGNING_KEY")
    public_key_path: str = Field("", description="PEM public key; default <private stem>.pub.pem")
    package_max_bytes: int = Field(1 << 30, description="a package archive's members may add up to (Z4_PACKAGE_MAX_BYTES)")
    package_max_members: int = Field(10_000, description="... and number this many (Z4_PACKAGE_MAX_MEMBERS)")

    @property
    def keyless(self) -> bool:
        return self.mode == "sigstore"

    def limits(self):
        """The archive limits promotion verifies a package with."""
        from z4_assets.core.packaging import ArchiveLimits

        return ArchiveLimits(self.package_max_bytes, self.package_max_members)

    def public_key(self) -> str:
        if self.public_key_path:
            return self.public_key_path
        p = Path(self.private_key_path)
        return str(p.with_name(p.stem + ".pub.pem"))
