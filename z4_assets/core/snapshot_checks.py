"""The snapshot gates: untampered bytes, data that satisfies its contract, a legal basis for every sensitive attribute."""

from __future__ import annotations

import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file
from z4_assets.core.gates import Gate, compare
from z4_assets.core.validation import validate_contract
from z4_assets.core.z3 import SnapshotRef, load_snapshot_frame


def hash_gate(ref: SnapshotRef) -> Gate:
    m = ref.manifest
    files = {"data": (ref.data_path, m["hash"]), "contract": (ref.contract_path, m["contract_hash"])}
    evidence, bad = {}, 0
    for role, (path, recorded) in files.items():
        actual = sha256_file(path) if path.is_file() else "missing"
        evidence[role] = {"file": path.name, "recorded": recorded, "recomputed": actual}
        bad += actual != recorded
    return compare("snapshot_hash", bad, "==", 0,
                   "files whose sha256 differs from the manifest", evidence)


def contract_gate(ref: SnapshotRef, contract: Contract) -> tuple[Gate, pd.DataFrame | None]:
    try:
        df = load_snapshot_frame(ref, contract)
    except Z4Error as e:
        return Gate("contract", False, "unreadable", 0, "==", f"FAILED: {e}", {}), None
    result = validate_contract(df, contract)
    worst = result.failures[0] if result.failures else None
    where = f" [{worst['column']}: {worst['check']}, ...]" if worst else ""
    gate = compare("contract", result.failure_count, "==", 0,
                   f"contract violations (dtype, range, categories, nulls, columns){where}",
                   {"failures": result.failures[:50], "message": result.message})
    return gate, df


def legal_basis_gate(contract: Contract, allowed: list[str]) -> Gate:
    missing = {col: spec.legal_basis for col, spec in contract.sensitive.items()
               if not spec.legal_basis or spec.legal_basis not in allowed}
    return compare("legal_basis", len(missing), "==", 0,
                   "sensitive attributes without an allowed legal basis",
                   {"offending": missing, "allowed": allowed,
                    "declared": {c: s.legal_basis for c, s in contract.sensitive.items()}})


def verify_snapshot(ref: SnapshotRef, contract: Contract, policy: dict) -> list[Gate]:
    contract_g, _ = contract_gate(ref, contract)
    return [hash_gate(ref), contract_g,
            legal_basis_gate(contract, list(policy["contract"]["allowed_legal_bases"]))]
