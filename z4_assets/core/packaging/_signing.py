"""Sign and verify a package folder with model-signing (Sigstore bundle format).

The default signer is an offline EC P-256 key. Keyless Sigstore signing is an option for CI
with OIDC; it needs the public Sigstore servers, which this environment cannot reach, so it
fails fast with a clear message instead of hanging.
"""

from __future__ import annotations

import os
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.packaging._keys import CertificateRoots, SigningKey, check_leaf_validity, configure_signer
from z4_assets.core.packaging._layout import SIGNATURE_FILE, SIGNATURES


def _hashing():
    from model_signing import hashing

    return hashing.Config().use_file_serialization(hashing_algorithm="sha256")


def keygen(private_path: str | Path, public_path: str | Path | None = None) -> tuple[Path, Path]:
    """Create an EC P-256 key pair: the private key 0600, never overwriting an existing one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    priv = Path(private_path)
    pub = Path(public_path) if public_path else priv.with_name(priv.stem + ".pub.pem")
    if priv.exists():
        raise Z4Error("refusing to overwrite an existing private key", priv)
    priv.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    os.chmod(pub, 0o644)
    return priv, pub


def sign_package(pkg: Path, private_key: str | Path | SigningKey | None = None, keyless: bool = False) -> Path:
    """Sign every file of pkg (signatures/ excluded); the bundle lands in signatures/model.sig.
    PRIVATE_KEY: an EC key's path, or a SigningKey of any mode (core/packaging/_keys.py)."""
    from model_signing import signing

    sig = pkg / SIGNATURE_FILE
    sig.parent.mkdir(parents=True, exist_ok=True)
    config = signing.Config().set_hashing_config(
        _hashing().set_ignored_paths(paths=[SIGNATURES], ignore_git_paths=False))
    if keyless:
        try:
            config.use_sigstore_signer(use_ambient_credentials=True).sign(pkg, sig)
        except Exception as e:  # network, TUF and OIDC failures come in many types
            raise Z4Error("keyless Sigstore signing failed (it needs the public Sigstore "
                          f"servers and an OIDC identity): {type(e).__name__}: {str(e)[:160]}") from None
        return sig
    key = private_key if isinstance(private_key, SigningKey) else SigningKey(private_key=str(private_key or ""))
    try:
        configure_signer(config, key).sign(pkg, sig)
    except Z4Error:
        raise
    except Exception as e:
        # never echo key material, a PIN or a URI carrying one: report only the kind of problem
        hint = {"pkcs11": "is the token present, the URI's token and object right, the PIN right?",
                "certificate": "do the key and the leaf certificate belong together?"}.get(
            key.mode, "is it an EC P-256 PEM key?")
        raise Z4Error(f"cannot sign with this {key.mode} key ({type(e).__name__}); {hint}",
                      key.private_key if key.mode == "ec_key" else None) from None
    return sig


def verify_signature(pkg: Path, public_key: str | Path | CertificateRoots | None = None,
                     identity: str | None = None, issuer: str | None = None) -> None:
    """Raise Z4Error unless signatures/model.sig covers exactly the files of pkg. PUBLIC_KEY: a public
    key's PEM (ec_key, pkcs11), or CertificateRoots (a certificate chain checked up to a CA root)."""
    from model_signing import verifying

    sig = pkg / SIGNATURE_FILE
    if not sig.is_file():
        raise Z4Error("package has no signature (signatures/model.sig)", pkg)
    config = verifying.Config().set_hashing_config(
        _hashing().set_ignored_paths(paths=[SIGNATURES], ignore_git_paths=False))
    try:
        if identity:
            config = config.use_sigstore_verifier(identity=identity, oidc_issuer=issuer or "")
        elif isinstance(public_key, CertificateRoots):
            check_leaf_validity(sig)
            config = config.use_certificate_verifier(certificate_chain=list(public_key.paths))
        else:
            config = config.use_elliptic_key_verifier(public_key=Path(public_key))
        config.verify(pkg, sig)
    except Z4Error:
        raise
    except Exception as e:  # model-signing raises ValueError and crypto/protobuf errors
        raise Z4Error(f"signature does not verify: {str(e).splitlines()[0][:300]}", sig) from None
