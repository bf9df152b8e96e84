"""A dataset's drift baseline: the profile (JSON) and its reference value counts (parquet), bound by sha256.

The profile names the sha256 of the value counts; reading refuses counts that changed since, so an
edited reference cannot quietly move every later drift figure.
"""

from __future__ import annotations

import hashlib
import io
import json

import pandas as pd

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import atomic_write_bytes, atomic_write_json, sha256_file
from z4_assets.core.hygiene import _drift as drift


def read_baseline(factory, dataset_id: str) -> tuple[dict | None, pd.DataFrame | None]:
    """The profile and value counts of DATASET_ID's baseline; (None, None) before its first one."""
    path = factory.baseline(dataset_id)
    if path.is_symlink():
        raise Z4Error("drift baseline is a symbolic link: a baseline is a file of the factory root", path)
    if not path.is_file():
        return None, None
    raw = path.read_bytes()
    try:
        profile = json.loads(raw)
    except ValueError as e:
        raise Z4Error(f"drift baseline is not valid JSON ({e})", path) from None
    if not isinstance(profile, dict):
        raise Z4Error("drift baseline is not a profile (a JSON object)", path)
    profile["file_sha256"] = hashlib.sha256(raw).hexdigest()  # the evidence names the exact baseline used
    if profile.get("version") != drift.PROFILE_VERSION:
        return profile, None  # an older format: the drift gate says so (re-baseline)
    ref_path = factory.baseline_reference(dataset_id)
    expected = (profile.get("reference") or {}).get("sha256")
    if not ref_path.is_file() or ref_path.is_symlink():
        raise Z4Error("drift baseline reference values are missing (delete the baseline to re-baseline)", ref_path)
    actual = sha256_file(ref_path)
    if actual != expected:
        raise Z4Error(f"drift baseline reference values changed since the baseline was set (sha256 {actual[:12]}, "
                      f"profile says {str(expected)[:12]})", ref_path)
    return profile, pd.read_parquet(ref_path)


def write_baseline(factory, dataset_id: str, label: str, profile: dict, reference: pd.DataFrame) -> str:
    """The value counts first, then the profile naming their sha256: a crash between leaves no baseline.
    Returns the profile file's sha256 (the run that sets the baseline records it)."""
    buf = io.BytesIO()
    reference.to_parquet(buf, index=False)
    ref_path = atomic_write_bytes(factory.baseline_reference(dataset_id), buf.getvalue())
    path = atomic_write_json(factory.baseline(dataset_id),
                             {"snapshot": label, **profile,
                              "reference": {"file": ref_path.name, "sha256": sha256_file(ref_path)}})
    return sha256_file(path)
