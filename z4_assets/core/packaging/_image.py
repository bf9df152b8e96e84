"""The training image's signed statement and its place in a run's package.

The statement is an in-toto Statement over the image digest, in a DSSE envelope, in a Sigstore
bundle (v0.3), signed with the factory's EC key (a PEM file, or inside the PKCS#11 token in pkcs11
mode) as model-signing signs a model package. Whoever runs the image (the container runner, the
Kubernetes launcher, `z4 rebuild`) verifies it and runs only a digest it names. A run trained in
the image carries the image's evidence in `image/`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from z4_assets.core.errors import Z4Error

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://github.com/z4-model-factory/training-image/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def image_statement(image: str, digest: str, predicate: dict) -> dict:
    return {"_type": STATEMENT_TYPE,
            "subject": [{"name": image, "digest": {"sha256": digest.removeprefix("sha256:")}}],
            "predicateType": PREDICATE_TYPE, "predicate": predicate}


def _pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is actually signed."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _key_hint(public_key) -> str:
    from cryptography.hazmat.primitives import serialization

    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def sign_image_statement(stmt: dict, private_key) -> dict:
    """A Sigstore bundle (v0.3, DSSE) over STMT, signed with the factory's EC P-256 key: a PEM file's
    path, or a key held in a PKCS#11 token (core.packaging.TokenSigner: the same ECDSA signature, made
    inside the token, so the key never exists as a file). Verified the same way, with the public key."""
    from cryptography.hazmat.primitives import hashes

    payload = json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()
    if hasattr(private_key, "sign") and hasattr(private_key, "public_key"):  # a key in a token
        public = private_key.public_key()
        sig = private_key.sign(_pae(PAYLOAD_TYPE, payload))
    else:
        from cryptography.hazmat.primitives.asymmetric import ec

        key = _load_ec_key(Path(private_key))
        public = key.public_key()
        sig = key.sign(_pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    return {"mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": _key_hint(public)}, "tlogEntries": []},
            "dsseEnvelope": {"payload": base64.b64encode(payload).decode(), "payloadType": PAYLOAD_TYPE,
                             "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}]}}


def _load_ec_key(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not path.is_file():
        raise Z4Error("no signing key: run `z4 keygen` and set Z4_SIGNING_KEY", path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), None)
    except (ValueError, TypeError) as e:
        raise Z4Error(f"cannot sign with this key ({type(e).__name__})", path) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise Z4Error("the signing key is not an EC P-256 key", path)
    return key


def verify_image_statement(bundle_path: str | Path, public_key: str | Path) -> dict:
    """The statement of the bundle at BUNDLE_PATH, once its signature verifies with PUBLIC_KEY."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = Path(bundle_path)
    if not path.is_file():
        raise Z4Error("the image has no signed statement (unsigned image): build and sign it with "
                      "`z4 image build`", path)
    if not Path(public_key).is_file():
        raise Z4Error("no public key to verify the image's statement (Z4_SIGNING_PUBKEY)", public_key)
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
        env = bundle["dsseEnvelope"]
        payload = base64.b64decode(env["payload"], validate=True)
        sigs = [base64.b64decode(s["sig"], validate=True) for s in env["signatures"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise Z4Error(f"the image's signed statement is not a Sigstore DSSE bundle ({type(e).__name__})",
                      path) from None
    if bundle.get("mediaType") != BUNDLE_MEDIA_TYPE or env.get("payloadType") != PAYLOAD_TYPE or not sigs:
        raise Z4Error("the image's signed statement has the wrong media or payload type", path)
    key = serialization.load_pem_public_key(Path(public_key).read_bytes())
    for sig in sigs:
        try:
            key.verify(sig, _pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
            break
        except InvalidSignature:
            continue
    else:
        raise Z4Error("the image's statement signature does not verify with the factory's public key", path)
    stmt = json.loads(payload)
    if stmt.get("_type") != STATEMENT_TYPE or stmt.get("predicateType") != PREDICATE_TYPE:
        raise Z4Error("the signed statement is not a z4 training-image statement", path)
    return stmt


def named_digests(stmt: dict) -> set[str]:
    """Every image digest ('sha256:<hex>') the statement's subjects name."""
    return {"sha256:" + s["digest"]["sha256"] for s in stmt.get("subject", []) if s.get("digest", {}).get("sha256")}


# The image's evidence (build/image/ and image/ in a package): role -> file name
IMAGE_EVIDENCE = {"facts": "image.json", "sbom": "sbom.cdx.json", "scan": "scan.json",
                  "statement": "statement.intoto.json", "bundle": "statement.sigstore.json"}
PACKAGE_IMAGE_DIR = "image"


def copy_image_evidence(evidence_dir: str | Path, container_digest: str, pkg: Path) -> str | None:
    """Copy the evidence of the image the run ran in into PKG/image/; returns the digest, or None when
    the run ran in no image or EVIDENCE_DIR describes another image (the record gate then fails)."""
    import shutil

    if not container_digest.startswith("sha256:"):
        return None
    src = Path(evidence_dir)
    facts = src / IMAGE_EVIDENCE["facts"]
    if not facts.is_file() or json.loads(facts.read_text()).get("digest") != container_digest:
        return None
    (pkg / PACKAGE_IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    for name in IMAGE_EVIDENCE.values():
        if (src / name).is_file():
            shutil.copyfile(src / name, pkg / PACKAGE_IMAGE_DIR / name)
    return container_digest


def digest_problem(container_digest: str, pkg: Path, public_key: str | Path | None) -> str | None:
    """Why the run record's container_digest is not proven by PKG, or None when it is.

    'none...' is honest (promotion decides whether a host run may ship); a digest must be named by
    the image statement in PKG/image/, whose signature verifies with PUBLIC_KEY."""
    if container_digest.startswith("none"):
        return None
    bundle = pkg / PACKAGE_IMAGE_DIR / IMAGE_EVIDENCE["bundle"]
    if not bundle.is_file():
        return f"container_digest {container_digest[:80]} is named by no signed image statement in the package"
    if not public_key:
        return "no public key to verify the image statement"
    try:
        named = named_digests(verify_image_statement(bundle, public_key))
    except Z4Error as e:
        return str(e)
    if container_digest not in named:
        return f"container_digest {container_digest[:80]} is not the digest the signed image statement names"
    return None


def packaged_image_digest(pkg: Path) -> str:
    """The image digest the package's provenance names as the run's training image, else 'none'."""
    prov = pkg / "provenance" / "provenance.intoto.json"
    if not prov.is_file():
        return "none"
    deps = json.loads(prov.read_text())["predicate"]["buildDefinition"].get("resolvedDependencies", [])
    found = [d["digest"]["sha256"] for d in deps if d.get("uri", "").startswith("oci:")]
    return f"sha256:{found[0]}" if found else "none"
