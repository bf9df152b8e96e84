"""Real key stores for the signing tests: SoftHSM2 tokens (Debian's softhsm2, state in a temp folder)
and throwaway X.509 CAs made with `cryptography` (root -> intermediate -> leaf)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SO_PIN = "5678"  # test tokens only  # pragma: allowlist secret


def softhsm_tokens(folder: Path, labels: dict[str, str], export: bool = True) -> Path:
    """Initialise one SoftHSM2 token per LABEL -> PIN under FOLDER; EXPORT: point this process's
    SOFTHSM2_CONF at it (the module reads it once per process, so every token is made before the
    module is first loaded). Without EXPORT, only subprocesses given SOFTHSM2_CONF see the tokens."""
    assert Path(SOFTHSM_MODULE).is_file() and shutil.which("softhsm2-util"), \
        "SoftHSM2 is missing: .ci/system-deps installs softhsm2 and opensc from Debian"
    (folder / "tokens").mkdir(parents=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    if export:
        os.environ["SOFTHSM2_CONF"] = str(conf)
    for label, pin in labels.items():
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin,
                        "--so-pin", SO_PIN], check=True, capture_output=True,
                       env={**os.environ, "SOFTHSM2_CONF": str(conf)})
    return conf


def token_uri(token: str, label: str = "z4sign") -> str:
    return f"pkcs11:token={token};object={label}?module-path={SOFTHSM_MODULE}"


@dataclass
class TestCA:
    root: Path
    intermediate: Path
    leaf: Path
    leaf_key: Path


def _name(cn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Z4 test bank"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject_key, issuer_key, subject: str, issuer: str, ca: bool, start, end):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca,
                                      content_commitment=False, key_encipherment=False, data_encipherment=False,
                                      key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False))
    if not ca:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_ca(folder: Path, name: str, leaf_expired: bool = False) -> TestCA:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    keys = {k: ec.generate_private_key(ec.SECP256R1()) for k in ("root", "int", "leaf")}
    root = _cert(keys["root"], keys["root"], f"{name} root CA", f"{name} root CA", True,
                 now - dt.timedelta(days=60), now + dt.timedelta(days=3650))
    inter = _cert(keys["int"], keys["root"], f"{name} signing CA", f"{name} root CA", True,
                  now - dt.timedelta(days=60), now + dt.timedelta(days=1825))
    leaf_end = now - dt.timedelta(days=1) if leaf_expired else now + dt.timedelta(days=365)
    leaf = _cert(keys["leaf"], keys["int"], f"{name} model factory", f"{name} signing CA", False,
                 now - dt.timedelta(days=30), leaf_end)
    pem = serialization.Encoding.PEM
    paths = TestCA(folder / "root.pem", folder / "intermediate.pem", folder / "leaf.pem", folder / "leaf.key")
    paths.root.write_bytes(root.public_bytes(pem))
    paths.intermediate.write_bytes(inter.public_bytes(pem))
    paths.leaf.write_bytes(leaf.public_bytes(pem))
    paths.leaf_key.write_bytes(keys["leaf"].private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    paths.leaf_key.chmod(0o600)
    return paths
