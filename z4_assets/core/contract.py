"""Data contracts: what a dataset must look like before the factory will train on it."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_bytes

DATASET_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
PURPOSE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RULE_RE = re.compile(r"^\s*(\S+)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")

Scalar = Union[bool, int, float, str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    dtype: Literal["integer", "float", "string", "boolean", "datetime"]
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: list[Scalar] | None = None
    group: str | None = Field(None, description="feature group reported in the manifest")
    description: str = ""
    feature: bool = Field(True, description="false keeps the column out of the model")
    known_at_column: str | None = Field(
        None, description="timestamp column telling when this value became known"
    )
    known_after_label: bool = Field(
        False, description="declared as only known after the label's time (post-outcome)"
    )
    immutable: bool = Field(
        False, description="cannot be changed by the person scored: frozen in evasion tests"
    )


class TargetSpec(_Strict):
    column: str
    positive: Scalar = 1


class SensitiveSpec(_Strict):
    legal_basis: str | None = Field(None, description="GDPR art. 6/9 basis, or consent")
    basis_reference: str = ""
    consent_reference: str | None = None
    use_as_feature: bool = False
    bins: list[float] | None = None


class TimeSpec(_Strict):
    column: str
    label_time_column: str | None = None


class Contract(_Strict):
    dataset_id: str
    description: str = ""
    target: TargetSpec
    id_column: str | None = None
    time: TimeSpec | None = None
    sensitive: dict[str, SensitiveSpec] = Field(default_factory=dict)
    impossible_values: list[str] = Field(default_factory=list)
    columns: dict[str, ColumnSpec]
    purposes: list[str] = Field(
        default_factory=list,
        description="purposes this data may be read for (e.g. credit_risk_scoring); none = no read allowed")
    identifiers: list[str] = Field(
        default_factory=list,
        description="direct identifiers (names, document numbers) pseudonymised on every read; "
                    "id_column is always one")
    missing_values: list[str] = Field(
        default_factory=list,
        description="text tokens read as a missing value in every column (e.g. '?', 'NA'), after trimming")
    trim_whitespace: bool = Field(
        False, description="strip leading and trailing whitespace from every text value (' Some-college')")

    @model_validator(mode="after")
    def _references_exist(self) -> "Contract":
        if not DATASET_ID_RE.match(self.dataset_id):
            raise ValueError(f"dataset_id {self.dataset_id!r} must match {DATASET_ID_RE.pattern}")
        named = {"target": self.target.column, "id_column": self.id_column}
        if self.time:
            named["time.column"] = self.time.column
            named["time.label_time_column"] = self.time.label_time_column
        for role, col in named.items():
            if col is not None and col not in self.columns:
                raise ValueError(f"{role} {col!r} is not declared under columns")
        for purpose in self.purposes:
            if not PURPOSE_RE.match(purpose):
                raise ValueError(f"purpose {purpose!r} must match {PURPOSE_RE.pattern}")
        for col in self.identifiers:
            if col not in self.columns:
                raise ValueError(f"identifier {col!r} is not declared under columns")
        for col in self.sensitive:
            if col not in self.columns:
                raise ValueError(f"sensitive attribute {col!r} is not declared under columns")
        for name, spec in self.columns.items():
            if spec.known_at_column and spec.known_at_column not in self.columns:
                raise ValueError(f"{name}.known_at_column {spec.known_at_column!r} is not declared")
            if spec.min is not None and spec.max is not None and spec.min > spec.max:
                raise ValueError(f"{name}: min {spec.min} is above max {spec.max}")
        for rule in self.impossible_values:
            parse_rule(rule, self.columns)
        return self

    @cached_property
    def structural_columns(self) -> set[str]:
        """Columns that are never model features: target, id, time and known-at stamps."""
        cols = {self.target.column}
        if self.id_column:
            cols.add(self.id_column)
        if self.time:
            cols.add(self.time.column)
            if self.time.label_time_column:
                cols.add(self.time.label_time_column)
        cols |= {s.known_at_column for s in self.columns.values() if s.known_at_column}
        return cols | set(self.identifiers)

    @cached_property
    def direct_identifiers(self) -> list[str]:
        """Columns the broker pseudonymises: the id column and every declared identifier."""
        return list(dict.fromkeys(c for c in [self.id_column, *self.identifiers] if c))

    @cached_property
    def candidate_features(self) -> list[str]:
        """Every column a model could see, sensitive ones included (used for hygiene)."""
        return [
            c for c, s in self.columns.items()
            if s.feature and c not in self.structural_columns and s.dtype != "datetime"
        ]

    @cached_property
    def model_features(self) -> list[str]:
        """The model's inputs: candidates minus sensitive attributes the contract keeps out."""
        return [
            c for c in self.candidate_features
            if not (c in self.sensitive and not self.sensitive[c].use_as_feature)
            and not self.columns[c].known_after_label
        ]

    def is_categorical(self, column: str) -> bool:
        spec = self.columns[column]
        return spec.categories is not None or spec.dtype in ("string", "boolean")

    def feature_groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for name in self.candidate_features:
            groups.setdefault(self.columns[name].group or "ungrouped", []).append(name)
        return groups


def parse_rule(rule: str, columns: dict[str, ColumnSpec]) -> tuple[str, str, str | float]:
    """Parse 'COL OP VALUE' where VALUE is a number or another declared column."""
    m = RULE_RE.match(rule)
    if not m:
        raise ValueError(f"impossible_values rule {rule!r} is not of the form 'COLUMN OP VALUE'")
    col, op, rhs = m.groups()
    if col not in columns:
        raise ValueError(f"impossible_values rule {rule!r} names undeclared column {col!r}")
    if rhs in columns:
        return col, op, rhs
    try:
        return col, op, float(rhs)
    except ValueError:
        raise ValueError(f"impossible_values rule {rule!r}: {rhs!r} is neither a number nor a column")


def load_yaml_model(path: str | Path, model: type[BaseModel], what: str) -> tuple[BaseModel, str]:
    """Read a YAML file into a strict pydantic model; returns it with the sha256 of its bytes.

    Every way the file can be wrong becomes one Z4Error line naming the file and the field.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise Z4Error(f"cannot read {what}: {e.strerror}", p) from None
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise Z4Error(f"{what} is not valid YAML: {str(e).splitlines()[0]}", p) from None
    if not isinstance(doc, dict):
        raise Z4Error(f"{what} must be a YAML mapping", p)
    try:
        parsed = model.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or what
        raise Z4Error(f"invalid {what} at {where}: {first['msg']}", p) from None
    return parsed, sha256_bytes(raw)


def load_contract(path: str | Path) -> tuple[Contract, str]:
    """Read and check a contract file; returns it with the sha256 of its bytes."""
    return load_yaml_model(path, Contract, "contract")
