"""The Z3 snapshot store the factory reads from: a local folder (Z4_Z3_ROOT, default ./data/z3)."""


import dagster as dg
from pydantic import Field

from z4_assets.core import z3


class Z3Store(dg.ConfigurableResource):
    """Resolves and lists immutable snapshots under one root folder."""

    root: str = Field(description="Z3 root folder holding <dataset_id>/<snapshot_id>/")

    def resolve(self, dataset_id: str = "", snapshot_id: str = "") -> z3.SnapshotRef:
        return z3.resolve_snapshot(self.root, dataset_id, snapshot_id)

    def snapshots(self, dataset_id: str | None = None) -> list[z3.SnapshotRef]:
        return z3.list_snapshots(self.root, dataset_id)
