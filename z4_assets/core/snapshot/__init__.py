"""The snapshot stage: the verified Z3 snapshot of one partition; nothing runs on bytes that changed,
on data that breaks its contract, or for a purpose its contract does not allow."""

from __future__ import annotations

from typing import Callable

from z4_assets.core.files import atomic_write_json
from z4_assets.core.outcome import Lineage, SnapshotOutcome
from z4_assets.core.snapshot._watch import (CONTENT_TAG, Ready, Waiting, content_key, examine, listing_digest,
                                            read_cursor, snapshot_run_tags, write_cursor)
from z4_assets.core.stage_run import StageRun
from z4_assets.core.stages import SNAPSHOT

__all__ = ["CONTENT_TAG", "Ready", "Waiting", "content_key", "examine", "listing_digest", "read_cursor",
           "run_z3_snapshot", "snapshot_run_tags", "write_cursor"]


def run_z3_snapshot(run: StageRun, read_raw: Callable, purpose_source: str) -> SnapshotOutcome:
    """Re-hash the snapshot, validate its rows against the contract (READ_RAW: the broker's one raw
    intake read), check legal bases and the run's purpose (declared by PURPOSE_SOURCE)."""
    from z4_assets.core.contract import load_contract
    from z4_assets.core.snapshot._checks import verify_snapshot

    ref = run.snapshot
    contract, _ = load_contract(ref.contract_path)
    gates = verify_snapshot(ref, contract, run.policy, lambda: read_raw(ref, contract), purpose_source)
    files = run.folder.stage(SNAPSHOT.folder)
    atomic_write_json(files.gates, [g.as_dict() for g in gates])
    atomic_write_json(files.manifest, ref.manifest)
    m = ref.manifest
    return SnapshotOutcome(
        stage=SNAPSHOT.name, partition=run.partition, run_id=run.run_id, gates=tuple(gates), snapshot=ref,
        files={"gates": str(files.gates), "manifest": str(files.manifest)},
        params={"policy_source": run.policy.source}, tags={"data_purpose": ref.purpose},
        metrics={f"gate.{g.name}.passed": float(g.passed) for g in gates},
        artifacts={"reports/snapshot": str(files.dir)},
        facts={"dataset_id": ref.dataset_id, "snapshot_id": ref.snapshot_id, "hash": m["hash"],
               "rows": int(m["row_count"]), "snapshot_at": m["snapshot_at"], "path": ref.path,
               "feature_groups": m["feature_groups"], "purpose": ref.purpose},
        produced=Lineage(snapshot=m["hash"], contract=m["contract_hash"]))
