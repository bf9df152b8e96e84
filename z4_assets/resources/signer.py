"""The package signer: an offline EC P-256 key by default; a key in a PKCS#11 token, a key with the bank
CA's certificate chain, or keyless Sigstore as options (core/packaging/_keys.py)."""

from pathlib import Path

import dagster as dg
from pydantic import Field


class PackageSigner(dg.ConfigurableResource):
    """Where the signing key lives; the key's bytes are never logged, tagged or packaged."""

    mode: str = Field("ec_key", description="ec_key (offline, default), pkcs11 (a key in a token), certificate "
                                            "(key + X.509 chain from the bank's CA) or sigstore (keyless, needs OIDC)")
    pkcs11_uri: str = Field("", description="pkcs11 mode: the key's PKCS#11 URI, without the PIN (Z4_PKCS11_URI)")
    pkcs11_pin: str = Field("", description="pkcs11 mode: the token PIN, only via dg.EnvVar('Z4_PKCS11_PIN')")
    pkcs11_pin_file: str = Field("", description="pkcs11 mode: a file holding the PIN, mounted by the deployment "
                                                 "(Z4_PKCS11_PIN_FILE); preferred over the env var")
    certificate: str = Field("", description="certificate mode: the signing (leaf) certificate PEM (Z4_SIGNING_CERT)")
    certificate_chain: list[str] = Field([], description="certificate mode: intermediate certificates' PEMs "
                                                         "(Z4_SIGNING_CHAIN, separated by ':')")
    ca_roots: list[str] = Field([], description="certificate mode: the CA root(s) promotion verifies the chain "
                                                "against (Z4_SIGNING_CA, separated by ':')")
    private_key_path: str = Field(description="PEM private key (EC P-256); from Z4_SIGNING_KEY")
    public_key_path: str = Field("", description="PEM public key; default <private stem>.pub.pem")
    package_max_bytes: int = Field(1 << 30, description="a package archive's members may add up to (Z4_PACKAGE_MAX_BYTES)")
    package_max_members: int = Field(10_000, description="... and number this many (Z4_PACKAGE_MAX_MEMBERS)")

    @property
    def keyless(self) -> bool:
        return self.mode == "sigstore"

    def signing_key(self):
        """The core SigningKey of this mode (its PIN stays out of every repr)."""
        from z4_assets.core.packaging import SigningKey

        return SigningKey(mode=self.mode, private_key=self.private_key_path, pkcs11_uri=self.pkcs11_uri,
                          pin=self.pkcs11_pin, pin_file=self.pkcs11_pin_file, certificate=self.certificate,
                          chain=tuple(self.certificate_chain))

    def limits(self):
        """The archive limits promotion verifies a package with."""
        from z4_assets.core.packaging import ArchiveLimits

        return ArchiveLimits(self.package_max_bytes, self.package_max_members)

    def public_key(self):
        """What promotion verifies a package with: the public key's PEM path (ec_key, pkcs11: the key
        `z4 keygen --pkcs11` exported), or the CA roots in certificate mode."""
        if self.mode == "certificate":
            from z4_assets.core.packaging import CertificateRoots

            return CertificateRoots(tuple(self.ca_roots))
        if self.public_key_path:
            return self.public_key_path
        p = Path(self.private_key_path)
        return str(p.with_name(p.stem + ".pub.pem"))
