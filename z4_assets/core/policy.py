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
