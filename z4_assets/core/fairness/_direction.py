"""Which decision is favourable to the person: the snapshot's dataset config says (its
`favourable_outcome`); a snapshot registered without one falls back to the policy's
`fairness.favourable_outcome`, and the report says which of the two decided."""

from __future__ import annotations

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file


def favourable_outcome(snapshot, contract, policy_value: str) -> tuple[str, str]:
    """(selected | not_selected, where it came from) for SNAPSHOT (a SnapshotRef)."""
    from z4_assets.core.dataset_config import load_dataset_config

    path = snapshot.dataset_config_path
    if path is None:
        return policy_value, "policy fairness.favourable_outcome (the snapshot has no dataset config)"
    if sha256_file(path) != snapshot.manifest.get("dataset_config_hash"):
        raise Z4Error("the snapshot's dataset config differs from its manifest", path)
    config, _ = load_dataset_config(path, snapshot.dataset_id)
    if config.favourable_outcome is None:
        return policy_value, ("policy fairness.favourable_outcome (the snapshot's dataset config, registered "
                              "before it was required, declares none)")
    return config.favourable_decision(contract), f"dataset config favourable_outcome: {config.favourable_outcome}"
