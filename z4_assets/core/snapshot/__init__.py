"""The snapshot stage: the verified Z3 snapshot of one partition; nothing runs on bytes that changed,
on data that breaks its contract, or for a purpose its contract does not allow."""

from __future__ import annotations

from typing import Callable

from z4_assets.core.files import atomic_write_bytes, atomic_write_json
from z4_assets.core.outcome import Lineage, SnapshotOutcome
from z4_assets.core.snapshot._watch import (CONTENT_TAG, Ready, Waiting, content_key, examine, listing_digest,
                                            read_cursor, snapshot_run_tags, write_cursor)
from z4_assets.core.stage_run import StageRun
from z4_assets.core.stages import SNAPSHOT

__all__ = ["CONTENT_TAG", "Ready", "Waiting", "content_key", "examine", "listing_digest", "read_cursor",
           "run_z3_snapshot", "snapshot_run_tags", "write_cursor"]


def run_z3_snapshot(run: StageRun, read_raw: Callable, purpose_source: str,
                    z3_public_key: str = "") -> SnapshotOutcome:
    """Check the Z3 signature (against Z3_PUBLIC_KEY), re-hash the snapshot, validate its rows against
    the contract (READ_RAW: the broker's one raw intake read), check legal bases and the run's purpose
    (declared by PURPOSE_SOURCE). The manifest and its signature go, byte for byte, into the evidence
    (and so into the package), for an auditor to check the data's origin."""
    from pathlib import Path

    from z4_assets.core.contract import load_contract
    from z4_assets.core.snapshot._checks import verify_snapshot
    from z4_assets.core.z3 import MANIFEST
    from z4_assets.core.z3_signature import SIGNATURE_FILE

    ref = run.snapshot
    contract, _ = load_contract(ref.contract_path)
    gates = verify_snapshot(ref, contract, run.policy, lambda: read_raw(ref, contract), purpose_source,
                            z3_public_key)
    files = run.folder.stage(SNAPSHOT.folder)
    atomic_write_json(files.gates, [g.as_dict() for g in gates])
    atomic_write_bytes(files.manifest, (Path(ref.path) / MANIFEST).read_bytes())
    written = {"gates": str(files.gates), "manifest": str(files.manifest)}
    if (Path(ref.path) / SIGNATURE_FILE).is_file():
        atomic_write_bytes(files.manifest_signature, (Path(ref.path) / SIGNATURE_FILE).read_bytes())
        written["manifest_signature"] = str(files.manifest_signature)
    m = ref.manifest
    return SnapshotOutcome(
        stage=SNAPSHOT.name, partition=run.partition, run_id=run.run_id, gates=tuple(gates), snapshot=ref,
        files=written,
        params={"policy_source": run.policy.source}, tags={"data_purpose": ref.purpose},
        metrics={f"gate.{g.name}.passed": float(g.passed) for g in gates},
        artifacts={"reports/snapshot": str(files.dir)},
        facts={"dataset_id": ref.dataset_id, "snapshot_id": ref.snapshot_id, "hash": m["hash"],
               "rows": int(m["row_count"]), "snapshot_at": m["snapshot_at"], "path": ref.path,
               "feature_groups": m["feature_groups"], "purpose": ref.purpose},
        produced=Lineage(snapshot=m["hash"], contract=m["contract_hash"]))
