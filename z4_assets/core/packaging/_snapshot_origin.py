"""`z4 verify`'s check of the data's origin: the snapshot manifest the package carries is the one the Z3
registrar signed, and it names the data the provenance says the model was trained on."""

from __future__ import annotations

import json
from pathlib import Path

from z4_assets.core.errors import Z4Error

MANIFEST_IN_PACKAGE = "reports/snapshot/dataset_manifest.json"
SIGNATURE_IN_PACKAGE = "reports/snapshot/dataset_manifest.sig"


def check_snapshot_origin(pkg: Path, z3_public_key: str | Path | None) -> str:
    """One line on success; Z4Error naming the problem otherwise. Without a Z3 public key nothing is
    claimed: the detail says the origin was not checked."""
    from z4_assets.core.z3_signature import verify_manifest

    manifest, sig = pkg / MANIFEST_IN_PACKAGE, pkg / SIGNATURE_IN_PACKAGE
    if not manifest.is_file():
        raise Z4Error(f"the package carries no snapshot manifest ({MANIFEST_IN_PACKAGE})")
    try:
        m = json.loads(manifest.read_text(encoding="utf-8"))
        trained_on = _provenance_data_digest(pkg)
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, OSError) as e:
        raise Z4Error(f"cannot read the snapshot manifest or the provenance: {type(e).__name__}") from None
    if trained_on is not None and m.get("hash") != trained_on:
        raise Z4Error(f"the snapshot manifest names data {str(m.get('hash'))[:16]}... but the provenance says "
                      f"the model was trained on {trained_on[:16]}...")
    if not z3_public_key:
        return (f"not checked: no Z3 public key given (--z3-key); the manifest is "
                f"{'signed' if sig.is_file() else 'UNSIGNED'}")
    if not sig.is_file():
        raise Z4Error(f"the snapshot manifest is not signed by the Z3 key ({SIGNATURE_IN_PACKAGE} missing)")
    statement = verify_manifest(manifest.read_bytes(), sig.read_bytes(), z3_public_key,
                                str(m.get("dataset_id")), str(m.get("snapshot_id")))
    return f"snapshot {statement['dataset_id']}@{statement['snapshot_id']} signed by the Z3 key"


def _provenance_data_digest(pkg: Path) -> str | None:
    from z4_assets.core.packaging._attest import PROVENANCE_FILE

    path = pkg / PROVENANCE_FILE
    if not path.is_file():
        return None
    deps = json.loads(path.read_text(encoding="utf-8"))["predicate"]["buildDefinition"]["resolvedDependencies"]
    found = [d["digest"]["sha256"] for d in deps if str(d.get("uri", "")).startswith("z3://")]
    return found[0] if found else None
