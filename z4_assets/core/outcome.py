"""What a stage hands the next: its gates, files, metrics and tags, bound to the content it was made from.

Every outcome carries the content digests of what it consumed (snapshot data and contract, the row
split, the model's weights) and of what it produced. A stage accepts its inputs only when they
are of its own snapshot, all passed their gates, and agree on every digest they share: evidence
of different snapshots, models or splits is never mixed, whichever run or click produced it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from z4_assets.core.errors import Z4Error
from z4_assets.core.gates import Gate
from z4_assets.core.stages import BY_NAME
from z4_assets.core.z3 import SnapshotRef

DIGESTS = ("snapshot", "contract", "split", "model", "package")


class LineageMismatch(Z4Error):
    """Inputs of one stage were made from different content."""


class UpstreamNotPassed(Z4Error):
    """An input's own gates did not all pass: nothing is built on it."""


class Lineage(BaseModel):
    """Content digests: sha256 of the snapshot data and contract file, the split file, the model's
    state_dict and the package tarball. None: not part of this lineage (yet)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    snapshot: str | None = None
    contract: str | None = None
    split: str | None = None
    model: str | None = None
    package: str | None = None

    def merge(self, other: Lineage, here: str = "", there: str = "") -> Lineage:
        """Both together; a digest they both name must be the same."""
        out = self.model_dump()
        for key in DIGESTS:
            mine, theirs = out[key], getattr(other, key)
            if mine and theirs and mine != theirs:
                raise LineageMismatch(f"{here or 'one input'} was made from {key} {mine[:16]}... but "
                                      f"{there or 'another'} from {key} {theirs[:16]}...: they are not one "
                                      "lineage; materialize the later stages of this snapshot again")
            out[key] = mine or theirs
        return Lineage(**out)


class Plot(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    path: str


class StageOutcome(BaseModel):
    """One stage's result for one snapshot (partition), as produced by one Dagster run."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    stage: str
    partition: str
    run_id: str
    gates: tuple[Gate, ...] = ()
    files: dict[str, str] = {}           # role -> path of a file this stage wrote (or a folder: model_dir)
    plots: dict[str, Plot] = {}          # metadata key -> a PNG this stage drew
    metrics: dict[str, float] = {}       # logged to MLflow
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    steps: tuple[tuple[str, float, int], ...] = ()  # step metrics (name, value, step): one per epoch
    artifacts: dict[str, str] = {}       # MLflow artifact path ("." = top level) -> local folder or file
    facts: dict[str, Any] = {}           # small JSON facts shown in the UI (counts, seconds, decision)
    consumed: Lineage = Lineage()        # digests of the inputs it was made from
    produced: Lineage = Lineage()        # digests of what it made

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def blocked_by(self) -> str | None:
        failed = [g.name for g in self.gates if not g.passed]
        return ",".join(failed) if failed else None

    @property
    def lineage(self) -> Lineage:
        return self.consumed.merge(self.produced, f"{self.stage} (inputs)", f"{self.stage} (output)")

    def file(self, role: str) -> Path:
        try:
            return Path(self.files[role])
        except KeyError:
            raise Z4Error(f"the {self.stage} outcome of {self.partition} names no {role!r} file") from None


class SnapshotOutcome(StageOutcome):
    snapshot: SnapshotRef


class HygieneOutcome(StageOutcome):
    @property
    def split_path(self) -> Path:
        return self.file("split")


class ModelOutcome(StageOutcome):
    @property
    def model_dir(self) -> Path:
        return self.file("model_dir")


class PackageOutcome(StageOutcome):
    @property
    def path(self) -> Path:
        return self.file("package")

    @property
    def tarball(self) -> Path:
        return self.file("tarball")

    @property
    def sha256(self) -> str:
        return str(self.produced.package)

    @property
    def decision(self) -> str:
        return str(self.facts["decision"])

    @property
    def mlflow_run_id(self) -> str:
        """The MLflow run the package was built and logged in (the registry version's source)."""
        return str(self.facts["mlflow_run_id"])


def accept(stage: str, partition: str, inputs: dict[str, StageOutcome]) -> Lineage:
    """The lineage STAGE builds on, after refusing inputs of another snapshot, inputs whose gates did
    not pass, and inputs made from different content."""
    lineage, where = Lineage(), ""
    for name, outcome in inputs.items():
        if outcome.partition != partition:
            raise LineageMismatch(f"{stage} of {partition} was given the {name} outcome of {outcome.partition}")
        if not outcome.passed:
            asset = BY_NAME[name].asset if name in BY_NAME else name
            raise UpstreamNotPassed(
                f"{stage} of {partition} refused: {asset} did not pass in run {outcome.run_id} "
                f"(blocked by {outcome.blocked_by}); fix it and materialize {asset} again")
        lineage = lineage.merge(outcome.lineage, where or name, name)
        where = f"{where}+{name}" if where else name
    return lineage
