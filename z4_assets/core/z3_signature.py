"""Who registered a Z3 snapshot: the manifest signed with the Z3 registrar's key, checked on every read.

The Z3 key is not the factory's signing key: the factory holds only the Z3 *public* key, so
someone who can write to the Z3 root (or to the factory) cannot re-register edited data and
recompute its hashes without the signature breaking. The signature sits beside the manifest
(`manifest.sig`, JSON) and covers a small statement:

    dataset_id, snapshot_id, hash (data), contract_hash, dataset_config_hash, manifest_sha256

`manifest_sha256` is the digest of the manifest's exact bytes, so every other manifest field
(row count, time range, file names) is covered too. ECDSA P-256 with SHA-256, like the package.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from z4_assets.core.errors import Z4Error

SIGNATURE_FILE = "manifest.sig"
SIGNATURE_TYPE = "z4/z3-snapshot-signature/v1"
SIGNED_FIELDS = ("dataset_id", "snapshot_id", "hash", "contract_hash", "dataset_config_hash")


def _canonical(statement: dict) -> bytes:
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def statement_of(manifest: dict, manifest_bytes: bytes) -> dict:
    """What the signature covers, for this manifest and its exact bytes."""
    return {**{k: manifest.get(k) for k in SIGNED_FIELDS},
            "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest()}


def key_id(public_key) -> str:
    """sha256 of the public key (DER): names the key in messages without showing anything secret."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def _load_private(path: str | Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p = Path(path)
    if not p.is_file():
        raise Z4Error("no Z3 signing key: run `z4 keygen --z3` and set Z4_Z3_SIGNING_KEY", p)
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (ValueError, TypeError) as e:  # never echo key material
        raise Z4Error(f"cannot read the Z3 signing key ({type(e).__name__}); is it an EC P-256 PEM key?", p) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise Z4Error("the Z3 signing key is not an EC key", p)
    return key


def load_public_key(path: str | Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p = Path(path)
    try:
        key = serialization.load_pem_public_key(p.read_bytes())
    except OSError as e:
        raise Z4Error(f"cannot read the Z3 public key: {e.strerror}", p) from None
    except (ValueError, TypeError) as e:
        raise Z4Error(f"not a PEM public key ({type(e).__name__})", p) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Z4Error("the Z3 public key is not an EC key", p)
    return key


def sign_manifest(manifest: dict, manifest_bytes: bytes, private_key) -> bytes:
    """The bytes of manifest.sig for this manifest, signed with the Z3 key: a PEM file's path, or a
    key held in a PKCS#11 token (core.packaging.TokenSigner: the same signature, made inside it)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    statement = statement_of(manifest, manifest_bytes)
    if hasattr(private_key, "sign") and hasattr(private_key, "public_key"):  # a key in a token
        key = private_key
        sig = key.sign(_canonical(statement))
    else:
        key = _load_private(private_key)
        sig = key.sign(_canonical(statement), ec.ECDSA(hashes.SHA256()))
    doc = {"type": SIGNATURE_TYPE, "statement": statement, "key_id": key_id(key.public_key()),
           "algorithm": "ecdsa-p256-sha256", "signature": base64.b64encode(sig).decode()}
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def verify_manifest(manifest_bytes: bytes, signature_bytes: bytes, public_key: str | Path,
                    dataset_id: str, snapshot_id: str) -> dict:
    """The signed statement, after checking that the Z3 key signed it, that it is about these exact
    manifest bytes, and that it names DATASET_ID and SNAPSHOT_ID; Z4Error (one line) otherwise."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        doc = json.loads(signature_bytes.decode("utf-8"))
        statement, sig = doc["statement"], base64.b64decode(doc["signature"], validate=True)
        if doc.get("type") != SIGNATURE_TYPE or not isinstance(statement, dict):
            raise ValueError("unknown signature type")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise Z4Error(f"malformed Z3 signature ({SIGNATURE_FILE}): not a {SIGNATURE_TYPE} document") from None
    key = load_public_key(public_key)
    try:
        key.verify(sig, _canonical(statement), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Z4Error(f"Z3 signature does not verify with the Z3 public key {key_id(key)} "
                      f"(signed by key {str(doc.get('key_id'))[:16]}, or the statement was edited)") from None
    actual = hashlib.sha256(manifest_bytes).hexdigest()
    if statement.get("manifest_sha256") != actual:
        raise Z4Error("manifest.json is not the one the Z3 key signed (its sha256 differs: edited, "
                      "or its hashes recomputed after registration)")
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise Z4Error("malformed manifest") from None
    for k in SIGNED_FIELDS:  # implied by the digest; said field by field for a clear message
        if statement.get(k) != manifest.get(k):
            raise Z4Error(f"Z3 signature covers {k}={statement.get(k)!r} but the manifest says {manifest.get(k)!r}")
    if (statement.get("dataset_id"), statement.get("snapshot_id")) != (dataset_id, snapshot_id):
        raise Z4Error(f"the Z3 signature is for {statement.get('dataset_id')}@{statement.get('snapshot_id')}, "
                      f"not {dataset_id}@{snapshot_id} (a snapshot copied under another name)")
    return statement
