"""The snapshot gates: untampered bytes, data that satisfies its contract, a legal basis for every sensitive attribute,
and a declared purpose the contract allows."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file
from z4_assets.core.gates import Gate
from z4_assets.core.stages import SNAPSHOT
from z4_assets.core.validation import REDACTED, validate_contract
from z4_assets.core.z3 import SnapshotRef

__all__ = ["REDACTED", "contract_gate", "hash_gate", "legal_basis_gate", "purpose_gate", "verify_snapshot"]


def signature_gate(ref: SnapshotRef, public_key: str, rule: str) -> Gate:
    """The manifest signed by the Z3 key (core/z3_signature.py). RULE: the policy's z3.signature."""
    from z4_assets.core.z3 import MANIFEST
    from z4_assets.core.z3_signature import SIGNATURE_FILE, verify_manifest

    spec, folder = SNAPSHOT.gate.snapshot_signature, Path(ref.path)
    sig, key = folder / SIGNATURE_FILE, Path(public_key) if public_key else None
    configured = key is not None and key.is_file()
    required = rule == "required" or configured
    details = {"rule": rule, "public_key": str(key) if key else None, "signature_file": SIGNATURE_FILE}
    if not sig.is_file():
        if required:
            return spec.verdict(False, "unsigned", "==", "valid",
                                f"FAILED: the snapshot has no Z3 signature ({SIGNATURE_FILE}) and the policy "
                                f"requires one (z3.signature: {rule}{', a Z3 public key is configured' if configured else ''})",
                                details)
        return spec.insufficient("the snapshot is unsigned and no Z3 public key is configured: who "
                                 "registered it is not checked", "==", "valid", blocks=False, details=details)
    if not configured:
        reason = (f"the Z3 public key {key} does not exist" if key else "no Z3 public key is configured (Z4_Z3_PUBKEY)")
        return spec.insufficient(f"{reason}: the snapshot's signature cannot be checked", "==", "valid",
                                 blocks=required, details=details)
    try:
        statement = verify_manifest((folder / MANIFEST).read_bytes(), sig.read_bytes(), key,
                                    ref.dataset_id, ref.snapshot_id)
    except Z4Error as e:
        return spec.verdict(False, "invalid", "==", "valid", f"FAILED: {e}", details)
    return spec.verdict(True, "valid", "==", "valid", "ok: the manifest is the one the Z3 key signed",
                        {**details, "statement": statement})


def hash_gate(ref: SnapshotRef) -> Gate:
    m = ref.manifest
    files = {"data": (ref.data_path, m["hash"]), "contract": (ref.contract_path, m["contract_hash"])}
    if ref.dataset_config_path is not None:
        files["dataset_config"] = (ref.dataset_config_path, m.get("dataset_config_hash"))
    evidence, bad = {}, 0
    for role, (path, recorded) in files.items():
        actual = sha256_file(path) if path.is_file() else "missing"
        evidence[role] = {"file": path.name, "recorded": recorded, "recomputed": actual}
        bad += actual != recorded
    return SNAPSHOT.gate.snapshot_hash.compare(bad, "==", 0,
                   "files whose sha256 differs from the manifest", evidence)


def contract_gate(ref: SnapshotRef, contract: Contract,
                  read: Callable[[], pd.DataFrame]) -> tuple[Gate, pd.DataFrame | None]:
    """`read` is the broker's raw intake read: the only unpseudonymised one of a run."""
    try:
        df = read()
    except Z4Error as e:
        return SNAPSHOT.gate.contract.verdict(False, "unreadable", "==", 0, f"FAILED: {e}"), None
    result = validate_contract(df, contract)  # evidence names the row problem, never the raw identifier
    worst = result.failures[0] if result.failures else None
    where = f" [{worst['column']}: {worst['check']}, ...]" if worst else ""
    gate = SNAPSHOT.gate.contract.compare(result.failure_count, "==", 0,
                   f"contract violations (dtype, range, categories, nulls, columns){where}",
                   {"failures": result.failures[:50], "message": result.message})
    return gate, df


def legal_basis_gate(contract: Contract, allowed: list[str]) -> Gate:
    missing = {col: spec.legal_basis for col, spec in contract.sensitive.items()
               if not spec.legal_basis or spec.legal_basis not in allowed}
    return SNAPSHOT.gate.legal_basis.compare(len(missing), "==", 0,
                   "sensitive attributes without an allowed legal basis",
                   {"offending": missing, "allowed": allowed,
                    "declared": {c: s.legal_basis for c, s in contract.sensitive.items()}})


def purpose_gate(contract: Contract, purpose: str, source: str) -> Gate:
    """The run's declared purpose is one its contract allows (none declared = none allowed)."""
    from z4_assets.core.broker import denial_reason

    reason = denial_reason(contract, purpose)
    allowed = ", ".join(contract.purposes) or "none declared (deny by default)"
    text = f"{'FAILED: ' + reason if reason else 'ok: purpose ' + repr(purpose) + ' is allowed'}" \
           f" (declared by {source}; must be in: {allowed})"
    return SNAPSHOT.gate.purpose.verdict(reason is None, purpose, "in", allowed, text,
                                         {"declared": purpose, "declared_by": source, "allowed": contract.purposes})


def verify_snapshot(ref: SnapshotRef, contract: Contract, policy,
                    read: Callable[[], pd.DataFrame], purpose_source: str = "run config",
                    z3_public_key: str = "") -> list[Gate]:
    contract_g, _ = contract_gate(ref, contract, read)
    return [signature_gate(ref, z3_public_key, policy.z3.signature), hash_gate(ref), contract_g,
            legal_basis_gate(contract, list(policy.contract.allowed_legal_bases)),
            purpose_gate(contract, ref.purpose, purpose_source)]
