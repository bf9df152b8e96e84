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

SECURITY_FILES = {"security_decision": "security_decision.txt", "adversarial_eval": "adv_eval.json",
                  "privacy_eval": "privacy_eval.json"}


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


def gather(snapshot_ref, stage_dirs: dict[str, Path], security_dir: Path) -> Evidence:
    """Evidence from the snapshot and each stage's folder (keys: snapshot, hygiene, model, fairness)."""
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
    snap, hyg, model, fair = (Path(stage_dirs[k]) for k in ("snapshot", "hygiene", "model", "fairness"))
    for name, path in {
        "snapshot_manifest": snap / "dataset_manifest.json", "snapshot_gates": snap / "gates.json",
        "hygiene_report": hyg / "hygiene_report.json", "hygiene_gates": hyg / "gates.json",
        "model_config": model / "model_config.json", "model_metrics": model / "metrics.json",
        "model_gates": model / "gates.json", "feature_spec": model / "feature_spec.json",
        "fairness_report": fair / "fairness.json",
    }.items():
        _add(ev, name, path)
    manifest = ev.get("snapshot_manifest")
    if manifest is not None and manifest.get("hash") != m["hash"]:
        del ev.pieces["snapshot_manifest"]
        ev.missing["snapshot_manifest"] = f"{snap / 'dataset_manifest.json'}: hash differs from the snapshot's"
    present = {k: f for k, f in SECURITY_FILES.items() if (security_dir / f).is_file()}
    ev.pieces["security_ran"] = bool(present)
    for name, fname in present.items():
        _add(ev, name, security_dir / fname)
    if present:  # the stage ran: every file it is meant to leave is evidence the card needs
        for name, fname in SECURITY_FILES.items():
            if name not in present:
                ev.missing[name] = f"{security_dir / fname}: file not found (the security stage left other files)"
    return ev
