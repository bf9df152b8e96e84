"""The per-dataset card config: what a model trained on this dataset is for, and what it is not for.

It travels with the data: `z4 snapshot add --dataset-config dataset.yaml` copies it into the
snapshot and records its sha256 in the manifest, so the model card's purpose and intended use
are as immutable as the data they describe.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from z4_assets.core.errors import Z4Error
from z4_assets.core.contract import load_yaml_model

if TYPE_CHECKING:
    from z4_assets.core.contract import Contract

DATASET_CONFIG_FILE = "dataset.yaml"
DECISIONS = ("selected", "not_selected")
ASK_FAVOURABLE = ("declares no favourable_outcome: add `favourable_outcome: not_selected` when being flagged is "
                  "adverse to the person (e.g. a predicted default), `selected` when it is favourable (e.g. "
                  "income > 50K, an offer), or the favourable value of the target column")


class DatasetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset_id: str
    model_name: str = Field(min_length=1)
    purpose: str = Field(min_length=1, description="what the model estimates, for whom")
    intended_use: str = Field(min_length=1, description="who uses the output and how")
    out_of_scope: list[str] = Field(min_length=1, description="uses the model must not be put to")
    limitations: list[str] = Field(default_factory=list, description="known limits, stated by the data owner")
    safeguards: list[str] = Field(default_factory=list, description="controls around the model's use")
    owner: str = ""
    favourable_outcome: str | int | float | bool | None = Field(
        None, description="selected, not_selected, or the target value that is good for the person; "
                          "fairness parity ratios compare rates of this outcome (required at registration)")
    model: dict | None = Field(None, description="the model section: family, hyperparameters, challengers "
                                                 "(core/training/_families.py; the run config's model: overrides it)")

    def favourable_decision(self, contract: Contract) -> str:
        """`selected` or `not_selected`: which of the model's decisions is favourable to the person.
        A target value means `selected` when it is the contract's positive class (the model flags
        rows predicted positive), `not_selected` when it is another value."""
        fav = self.favourable_outcome
        if fav is None:
            raise Z4Error(f"dataset config {ASK_FAVOURABLE}")
        if isinstance(fav, str) and fav in DECISIONS:
            return fav
        target = contract.target
        declared = contract.columns[target.column].categories if target.column in contract.columns else None
        if str(fav) == str(target.positive):
            return "selected"
        if declared and str(fav) not in {str(c) for c in declared}:
            raise Z4Error(f"dataset config favourable_outcome {fav!r} is neither selected, not_selected nor a "
                          f"value of the target column {target.column} ({', '.join(map(str, declared))})")
        return "not_selected"


def load_dataset_config(path: str | Path, dataset_id: str | None = None,
                        contract: Contract | None = None) -> tuple[DatasetConfig, str]:
    """Read and check a dataset config; returns it with the sha256 of its bytes. With CONTRACT (at
    registration), it must also declare a favourable outcome that the contract's target can mean."""
    p = Path(path)
    config, digest = load_yaml_model(p, DatasetConfig, "dataset config")
    if dataset_id is not None and config.dataset_id != dataset_id:
        raise Z4Error(f"dataset config is for {config.dataset_id!r}, not {dataset_id!r}", p)
    if contract is not None:
        try:
            config.favourable_decision(contract)
        except Z4Error as e:
            raise Z4Error(str(e), p) from None
    return config, digest
