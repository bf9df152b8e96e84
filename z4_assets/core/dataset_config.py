"""The per-dataset card config: what a model trained on this dataset is for, and what it is not for.

It travels with the data: `z4 snapshot add --dataset-config dataset.yaml` copies it into the
snapshot and records its sha256 in the manifest, so the model card's purpose and intended use
are as immutable as the data they describe.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from z4_assets.core.errors import Z4Error
from z4_assets.core.contract import load_yaml_model

DATASET_CONFIG_FILE = "dataset.yaml"


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


def load_dataset_config(path: str | Path, dataset_id: str | None = None) -> tuple[DatasetConfig, str]:
    """Read and check a dataset config; returns it with the sha256 of its bytes."""
    p = Path(path)
    config, digest = load_yaml_model(p, DatasetConfig, "dataset config")
    if dataset_id is not None and config.dataset_id != dataset_id:
        raise Z4Error(f"dataset config is for {config.dataset_id!r}, not {dataset_id!r}", p)
    return config, digest
