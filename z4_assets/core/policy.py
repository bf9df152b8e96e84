"""The promotion policy: defaults for every dataset, overridable per dataset, in one YAML file."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from z4_assets.core.errors import Z4Error

DEFAULT_POLICY = Path(__file__).resolve().parents[1] / "policy.yaml"


def load_policy(path: str | Path | None, dataset_id: str) -> dict:
    """The effective policy for one dataset: defaults deep-merged with its overrides."""
    p = Path(path) if path else DEFAULT_POLICY
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise Z4Error(f"cannot read policy: {e.strerror}", p) from None
    except yaml.YAMLError as e:
        raise Z4Error(f"policy is not valid YAML: {str(e).splitlines()[0]}", p) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("defaults"), dict):
        raise Z4Error("policy must be a mapping with a 'defaults' section", p)
    merged = copy.deepcopy(doc["defaults"])
    if p != DEFAULT_POLICY:  # a user's file may hold only what it changes
        base = yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))["defaults"]
        check_policy(doc, base, p)
        merged = _merge(base, merged)
    overrides = (doc.get("datasets") or {}).get(dataset_id) or {}
    merged = _merge(merged, overrides)
    merged["source"] = str(p)
    return merged


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# Mappings whose keys the user names (attributes, retention classes): not checked against the defaults.
_OPEN = {("fairness", "bins"), ("retention", "classes")}
# Keys that take more than one kind of value.
_KINDS = {("fairness", "intersections"): ("text", "list")}


def _kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "text", list: "list", dict: "mapping"}.get(type(value), "null" if value is None else type(value).__name__)


def check_policy(doc: dict, base: dict, path: Path) -> None:
    """Every key of a user's policy must exist in the packaged defaults, with a value of the same
    kind: a misspelt threshold must not be ignored in silence, nor a word compared to a number."""
    for key in doc:
        if key not in ("defaults", "datasets"):
            raise Z4Error(f"unknown policy section {key!r}: expected 'defaults' and 'datasets'", path)
    _check(doc["defaults"], base, "defaults", (), path)
    datasets = doc.get("datasets") or {}
    if not isinstance(datasets, dict):
        raise Z4Error(f"policy key datasets must be a mapping of dataset ids, got {_kind(datasets)}", path)
    for dataset_id, overrides in datasets.items():
        if overrides is not None and not isinstance(overrides, dict):
            raise Z4Error(f"policy key datasets.{dataset_id} must be a mapping, got {_kind(overrides)}", path)
        _check(overrides or {}, base, f"datasets.{dataset_id}", (), path)


def _check(over: dict, base: dict, where: str, trail: tuple, path: Path) -> None:
    import difflib

    for key, value in over.items():
        at = (*trail, key)
        name = ".".join([where, *map(str, at)])
        if key not in base:
            near = difflib.get_close_matches(str(key), [str(k) for k in base], n=1)
            raise Z4Error(f"unknown policy key {name}" + (f" (did you mean {near[0]!r}?)" if near else ""), path)
        allowed = _KINDS.get(at, (_kind(base[key]),))
        if _kind(value) not in allowed:
            raise Z4Error(f"policy key {name} must be a {' or '.join(allowed)}, not {_kind(value)} {value!r}", path)
        if isinstance(value, dict) and at not in _OPEN:
            _check(value, base[key], where, at, path)
