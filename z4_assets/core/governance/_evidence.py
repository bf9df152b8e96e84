"""Gather every piece of evidence the model card is built from, and name the ones that are missing.

A piece is a file a stage wrote (or the snapshot's own files). A missing, unreadable or
tampered piece is recorded with its path and the reason, never silently skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file

SECURITY_FILES = ("security_decision", "adversarial_eval", "privacy_eval")
PIECES = ("snapshot_manifest", "snapshot_gates", "hygiene_report", "hygiene_gates", "model_config", "model_metrics",
          "model_gates", "feature_spec", "fairness_report", *SECURITY_FILES)


@dataclass
class Evidence:
    pieces: dict = field(default_factory=dict)     # name -> parsed content
    sources: dict = field(default_factory=dict)    # name -> path it came from
    missing: dict = field(default_factory=dict)    # name -> "path: reason"

    def has(self, *names: str) -> bool:
        return all(n in self.pieces for n in names)

    def get(self, name: str, default=None):
        return self.pieces.get(name, default)


def _read(path: Path):
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    if path.suffix in (".yaml", ".yml"):
        return yaml.safe_load(text)
    return text


def _add(ev: Evidence, name: str, path: Path | None, expected_sha256: str | None = None) -> None:
    if path is None:
        ev.missing[name] = "not recorded (no such file was registered)"
        return
    if not path.is_file():
        ev.missing[name] = f"{path}: file not found"
        return
    if expected_sha256 and sha256_file(path) != expected_sha256:
        ev.missing[name] = f"{path}: sha256 differs from the snapshot manifest"
        return
    try:
        content = _read(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
        ev.missing[name] = f"{path}: unreadable ({type(e).__name__})"
        return
    if content in (None, "", [], {}):
        ev.missing[name] = f"{path}: empty"
        return
    ev.pieces[name], ev.sources[name] = content, str(path)


def gather(snapshot_ref, files: dict[str, Path]) -> Evidence:
    """Evidence from the snapshot's own files and from FILES: piece name -> the file an upstream
    outcome of this lineage names (snapshot_manifest, snapshot_gates, hygiene_report, hygiene_gates,
    model_config, model_metrics, model_gates, feature_spec, fairness_report and SECURITY_FILES)."""
    from z4_assets.core.dataset_config import load_dataset_config

    ev = Evidence()
    m = snapshot_ref.manifest
    _add(ev, "dataset_config", snapshot_ref.dataset_config_path, m.get("dataset_config_hash"))
    if "dataset_config" in ev.pieces:
        try:
            config, _ = load_dataset_config(snapshot_ref.dataset_config_path, snapshot_ref.dataset_id)
            ev.pieces["dataset_config"] = config.model_dump()
        except Z4Error as e:
            del ev.pieces["dataset_config"]
            ev.missing["dataset_config"] = str(e)
    _add(ev, "contract", snapshot_ref.contract_path, m.get("contract_hash"))
    for name in PIECES:
        _add(ev, name, files.get(name))
    manifest = ev.get("snapshot_manifest")
    if manifest is not None and manifest.get("hash") != m["hash"]:
        del ev.pieces["snapshot_manifest"]
        ev.missing["snapshot_manifest"] = f"{files['snapshot_manifest']}: hash differs from the snapshot's"
    return ev
