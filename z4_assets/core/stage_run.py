"""What one stage works with in one run: its snapshot, the rules, where it writes and how it reads rows.

The Dagster assets and the benchmark's bare factory build the same `StageRun` and call the same
stage functions with it; nothing in here knows which of the two is calling.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Callable

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file
from z4_assets.core.policy import Policy
from z4_assets.core.run_folder import FactoryRoot, RunFolder
from z4_assets.core.z3 import SnapshotRef

if TYPE_CHECKING:
    import pandas as pd

    from z4_assets.core.contract import Contract

# (snapshot, contract, reader name) -> the rows, pseudonymised, one access-log line per call
RowReader = Callable[[SnapshotRef, "Contract", str], "pd.DataFrame"]


@dataclass(frozen=True)
class StageRun:
    run_id: str
    snapshot: SnapshotRef
    policy: Policy
    factory: FactoryRoot
    read: RowReader
    reader: str = ""          # the asset reading, as the access log names it

    @property
    def partition(self) -> str:
        return self.snapshot.label

    @property
    def folder(self) -> RunFolder:
        return self.factory.run(self.run_id)

    @cached_property
    def contract(self) -> Contract:
        """The snapshot's contract, refused if its bytes are not the ones the manifest recorded."""
        from z4_assets.core.contract import load_contract

        path, recorded = self.snapshot.contract_path, self.snapshot.manifest.get("contract_hash")
        if not path.is_file() or sha256_file(path) != recorded:
            raise Z4Error("the snapshot's contract file is missing or differs from its manifest", path)
        return load_contract(path)[0]

    def rows(self) -> pd.DataFrame:
        """The snapshot's rows for this run's purpose, through the access broker."""
        return self.read(self.snapshot, self.contract, self.reader)
