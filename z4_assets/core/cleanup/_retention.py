"""Retention classes: what each artifact of a run is (EVIDENCE, INTERMEDIATE, TRANSIENT) and until when it is kept.

The policy's `retention` section names classes (RET-<days>) and glob rules; the first rule
matching a path relative to runs/<run id>/ gives its class, unmatched paths get the default
class (evidence). EVIDENCE classes must keep at least 90 days.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from z4_assets.core.cleanup._paths import tree_files
from z4_assets.core.run_folder import FILES, RunFolder
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file

KINDS = ("EVIDENCE", "INTERMEDIATE", "TRANSIENT")
EVIDENCE_MIN_DAYS = 90
MANIFEST_NAME = FILES["postrun"]["retention_manifest"]


@dataclass(frozen=True)
class RetentionPolicy:
    classes: dict[str, dict]     # name -> {kind, days, what}
    rules: list[tuple[str, str]]  # (glob, class name), first match wins
    default_class: str
    transient_class: str
    scratch_grace_hours: float
    hash_max_bytes: int

    def classify(self, rel_path: str) -> str:
        for pattern, name in self.rules:
            if fnmatch.fnmatchcase(rel_path, pattern):
                return name
        return self.default_class


def retention_policy(section: dict | None, source: str = "policy") -> RetentionPolicy:
    """Validate the policy's retention section; a bad one is one clear line naming the policy file."""
    if not isinstance(section, dict) or not isinstance(section.get("classes"), dict):
        raise Z4Error("policy has no retention.classes section", source)
    classes = {}
    for name, spec in section["classes"].items():
        kind, days = (spec or {}).get("kind"), (spec or {}).get("days")
        if kind not in KINDS or not isinstance(days, int) or days < 0:
            raise Z4Error(f"retention class {name}: kind must be one of {KINDS} and days an integer >= 0", source)
        if kind == "EVIDENCE" and days < EVIDENCE_MIN_DAYS:
            raise Z4Error(f"retention class {name} keeps EVIDENCE {days} days: at least "
                          f"{EVIDENCE_MIN_DAYS} are required", source)
        if kind == "TRANSIENT" and days != 0:
            raise Z4Error(f"retention class {name}: TRANSIENT artifacts are deleted now (days: 0)", source)
        classes[name] = {"kind": kind, "days": days, "what": str(spec.get("what", ""))}
    rules = []
    for rule in section.get("rules") or []:
        if not isinstance(rule, dict) or rule.get("class") not in classes or not rule.get("glob"):
            raise Z4Error(f"retention rule {rule!r} needs a glob and a known class", source)
        rules.append((str(rule["glob"]), rule["class"]))
    default = section.get("default_class")
    transient = [n for n, c in classes.items() if c["kind"] == "TRANSIENT"]
    if default not in classes or classes[default]["kind"] != "EVIDENCE":
        raise Z4Error("retention.default_class must name an EVIDENCE class (unknown files are kept)", source)
    if not transient:
        raise Z4Error("retention needs a TRANSIENT class (RET-0) for what cleanup deletes now", source)
    return RetentionPolicy(classes, rules, default, transient[0],
                           float(section.get("scratch_grace_hours", 24)),
                           int(float(section.get("hash_max_mb", 64)) * (1 << 20)))


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def build_manifest(paths: RunFolder, policy: RetentionPolicy, removed: list[dict], now: datetime,
                   extra: dict | None = None) -> dict:
    """Every artifact of the run with its class, kind, size, sha256 and expiry.

    Files still in the run folder are classified by the rules; what cleanup removed from
    scratch (and temp files) is listed as TRANSIENT, deleted at `now`.
    """
    entries = []
    own = paths.postrun / MANIFEST_NAME
    for f in tree_files(paths.run_dir) if paths.run_dir.is_dir() else []:
        if f == own:
            continue
        rel = f.relative_to(paths.run_dir).as_posix()
        name = policy.classify(rel)
        cls = policy.classes[name]
        size = f.lstat().st_size
        hashed = f.is_file() and not f.is_symlink() and size <= policy.hash_max_bytes
        entries.append({"path": rel, "class": name, "kind": cls["kind"], "size": size,
                        "sha256": sha256_file(f) if hashed else None,
                        "expires_at": _iso(now + timedelta(days=cls["days"]))})
    t = policy.transient_class
    for r in removed:
        entries.append({"path": r["path"], "base": r["base"], "class": t, "kind": "TRANSIENT",
                        "size": r["size"], "sha256": r["sha256"], "what": r["what"],
                        "deleted_at": _iso(now)})
    totals: dict[str, dict] = {}
    for e in entries:
        agg = totals.setdefault(e["class"], {"kind": e["kind"], "files": 0, "bytes": 0})
        agg["files"] += 1
        agg["bytes"] += e["size"]
    return {"run_id": paths.run_id, "classified_at": _iso(now), "run_dir": str(paths.run_dir),
            "classes": policy.classes, "rules": [{"glob": g, "class": c} for g, c in policy.rules],
            "default_class": policy.default_class, "totals": totals, "entries": entries,
            "note": f"{MANIFEST_NAME} itself and cleanup_report.json are classified by the rules "
                    "for postrun/; copies logged to MLflow follow the MLflow store's own lifecycle.",
            **(extra or {})}
