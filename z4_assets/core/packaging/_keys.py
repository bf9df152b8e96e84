"""Where the factory's signing key lives, by mode, and the trace each mode leaves.

- ec_key: an EC P-256 PEM file (the offline default).
- pkcs11: a key pair inside a PKCS#11 token (SoftHSM2 in tests, the bank's HSM in production), named
  by a PKCS#11 URI; the private key never exists as a file and cannot be read out (CKA_EXTRACTABLE
  false, CKA_SENSITIVE true). The PIN arrives as a secret: a mounted file (pin-source) or a value
  given in memory (pin-value), never in the configured URI, a log or a tag.
- certificate: a key plus the X.509 chain the bank's CA issued for it; verifiers check the chain
  against the CA's root (`z4 verify --ca ROOT.pem`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from z4_assets.core.errors import Z4Error
from z4_assets.core.signing_modes import SIGNING_MODES as MODES


@dataclass(frozen=True)
class SigningKey:
    """The signer of one mode. PIN is a secret: it never appears in a repr, a trace or an error."""

    mode: str = "ec_key"
    private_key: str = ""                 # ec_key, certificate: PEM path
    pkcs11_uri: str = ""                  # pkcs11: pkcs11:token=...;object=...?module-path=... (no PIN)
    pin: str = field(default="", repr=False)  # pkcs11: the PIN's value (from dg.EnvVar), or
    pin_file: str = ""                    # ... a file mounted by the deployment
    certificate: str = ""                 # certificate: the leaf certificate (PEM)
    chain: tuple[str, ...] = ()           # certificate: intermediates up to (not incl.) the root (PEM)

    def __post_init__(self):
        if self.mode not in MODES:
            raise Z4Error(f"unknown signing mode {self.mode!r}: use one of {', '.join(MODES)}")


@dataclass(frozen=True)
class CertificateRoots:
    """What a certificate-signed package is verified against: the CA root(s) a verifier trusts."""

    paths: tuple[str, ...]


def pkcs11_uri_with_pin(key: SigningKey) -> str:
    """The URI model-signing opens, with the PIN added in memory. A configured URI that already
    carries a PIN is refused: the PIN must come from a secret, not from config."""
    uri = key.pkcs11_uri
    if not uri.startswith("pkcs11:"):
        raise Z4Error("Z4_PKCS11_URI must be a PKCS#11 URI (pkcs11:token=...;object=...?module-path=...)")
    if "pin-value=" in uri or "pin-source=" in uri:
        raise Z4Error("Z4_PKCS11_URI must not carry the PIN: give it as Z4_PKCS11_PIN or Z4_PKCS11_PIN_FILE")
    if key.pin_file:
        extra = "pin-source=" + quote(str(Path(key.pin_file).resolve()), safe="/")
    elif key.pin:
        extra = "pin-value=" + quote(key.pin, safe="")
    else:
        raise Z4Error("no PKCS#11 PIN: set Z4_PKCS11_PIN_FILE (a mounted file) or Z4_PKCS11_PIN")
    return uri + ("&" if "?" in uri else "?") + extra


def configure_signer(config, key: SigningKey):
    """CONFIG (model_signing.signing.Config) set up to sign with KEY."""
    if key.mode == "pkcs11":
        return config.use_pkcs11_signer(pkcs11_uri=pkcs11_uri_with_pin(key))
    if key.mode == "certificate":
        for p in (key.private_key, key.certificate, *key.chain):
            if not p or not Path(p).is_file():
                raise Z4Error("certificate signing needs Z4_SIGNING_KEY, Z4_SIGNING_CERT and Z4_SIGNING_CHAIN "
                              "files", p or None)
        return config.use_certificate_signer(private_key=key.private_key, signing_certificate=key.certificate,
                                             certificate_chain=list(key.chain))
    if not key.private_key or not Path(key.private_key).is_file():
        raise Z4Error("no signing key: run `z4 keygen` and set Z4_SIGNING_KEY to the private key path",
                      key.private_key or None)
    return config.use_elliptic_key_signer(private_key=Path(key.private_key))


def _spki_sha256(public_key) -> str:
    """sha256 of the public key's PEM (SubjectPublicKeyInfo): the key hint model-signing writes."""
    from cryptography.hazmat.primitives import serialization

    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(pem).hexdigest()


def signing_trace(bundle_path: Path) -> dict:
    """What a signature says about its signer, read back from the bundle it wrote: the public key's
    fingerprint (ec_key, pkcs11) or each certificate's fingerprint and subject (certificate)."""
    import base64
    import json

    from cryptography import x509

    material = json.loads(Path(bundle_path).read_text(encoding="utf-8")).get("verificationMaterial", {})
    chain = material.get("x509CertificateChain", {}).get("certificates", [])
    if chain:
        certs = [x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"])) for c in chain]
        return {"certificate_chain": [{"subject": c.subject.rfc4514_string(), "issuer": c.issuer.rfc4514_string(),
                                       "sha256": "sha256:" + c.fingerprint(_sha256()).hex()} for c in certs],
                "public_key_sha256": _spki_sha256(certs[0].public_key())}
    hint = material.get("publicKey", {}).get("hint", "")
    return {"public_key_sha256": f"sha256:{hint}"} if hint else {}


def _sha256():
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def public_key_fingerprint(pem_path: str | Path) -> str:
    from cryptography.hazmat.primitives import serialization

    return _spki_sha256(serialization.load_pem_public_key(Path(pem_path).read_bytes()))


def check_leaf_validity(bundle_path: Path, now=None) -> None:
    """A certificate-signed bundle's leaf must be valid now (no trusted timestamp says when it signed)."""
    import base64
    import json
    from datetime import datetime, timezone

    from cryptography import x509

    try:
        material = json.loads(Path(bundle_path).read_text(encoding="utf-8"))["verificationMaterial"]
        leaf = x509.load_der_x509_certificate(base64.b64decode(
            material["x509CertificateChain"]["certificates"][0]["rawBytes"]))
    except (KeyError, IndexError, ValueError, TypeError):
        raise Z4Error("the signature carries no certificate chain (was it signed in certificate mode?)") from None
    at = now or datetime.now(timezone.utc)
    if not leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc:
        raise Z4Error(f"the signing certificate {leaf.subject.rfc4514_string()} is not valid now "
                      f"(valid {leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d})")
