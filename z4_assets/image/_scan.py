"""Vulnerability scan of the image's SBOM against a database the bank supplies as a file.

No scanner here may reach a vulnerability service, so the database is an input: OSV records (the
format osv.dev publishes per ecosystem as `<ecosystem>/all.zip`), given as that zip, a folder of
OSV JSON files or one JSON file (one record or a list). Debian records match a binary package or
its source package; versions are compared with `dpkg --compare-versions` (Debian) or PEP 440 (PyPI).
No database: "not scanned", which blocks in release mode and warns loudly in development mode.
"""

from __future__ import annotations

import json
import subprocess  # nosec B404 # dpkg --compare-versions, fixed argv
import zipfile
from pathlib import Path

from z4_assets.buildlane.result import FAIL, PASS, WARN, LaneResult
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file

NOT_SCANNED = "not scanned (no vulnerability database given)"


def load_db(path: Path) -> list[dict]:
    """Every OSV record of PATH (zip, folder or JSON); a malformed database is an error, never empty."""
    if not path.exists():
        raise Z4Error("vulnerability database not found", path)
    texts: list[str] = []
    try:
        if path.is_dir():
            texts = [p.read_text(encoding="utf-8") for p in sorted(path.rglob("*.json"))]
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                texts = [z.read(n).decode("utf-8") for n in sorted(z.namelist()) if n.endswith(".json")]
        else:
            texts = [path.read_text(encoding="utf-8")]
        records = []
        for t in texts:
            doc = json.loads(t)
            records += doc if isinstance(doc, list) else [doc]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, zipfile.BadZipFile) as e:
        raise Z4Error(f"vulnerability database is unreadable: {type(e).__name__}", path) from None
    if not records or not all(isinstance(r, dict) and r.get("id") and "affected" in r for r in records):
        raise Z4Error("vulnerability database holds no OSV records (each needs 'id' and 'affected')", path)
    return records


def _cmp(eco: str, a: str, b: str) -> int:
    if eco == "Debian":
        def lt(x, y):
            return subprocess.run(["dpkg", "--compare-versions", x, "lt", y],  # nosec B603 B607 # dpkg, fixed argv
                                  check=False).returncode == 0
        return -1 if lt(a, b) else 1 if lt(b, a) else 0
    from packaging.version import InvalidVersion, Version

    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion:
        return (a > b) - (a < b)
    return (va > vb) - (va < vb)


def _in_ranges(eco: str, version: str, ranges: list[dict]) -> bool:
    for r in ranges:
        if r.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        affected = False
        for ev in r.get("events", []):
            if "introduced" in ev:
                affected = ev["introduced"] == "0" or _cmp(eco, version, ev["introduced"]) >= 0
            elif "fixed" in ev and affected and _cmp(eco, version, ev["fixed"]) >= 0:
                affected = False
            elif "last_affected" in ev and affected and _cmp(eco, version, ev["last_affected"]) > 0:
                affected = False
        if affected:
            return True
    return False


def findings(components: list[dict], records: list[dict]) -> list[str]:
    """'<ecosystem> name==version: ID' for every component an OSV record says is affected.

    COMPONENTS: {ecosystem, name, version, source?} ('Debian' or 'PyPI')."""
    from packaging.utils import canonicalize_name

    def key(eco: str, name: str) -> tuple[str, str]:
        return (eco, canonicalize_name(name) if eco == "PyPI" else name)

    index: dict[tuple[str, str], list[dict]] = {}
    for c in components:
        index.setdefault(key(c["ecosystem"], c["name"]), []).append(c)
        if c.get("source") and c["source"] != c["name"]:
            index.setdefault(key(c["ecosystem"], c["source"]), []).append(c)
    out = []
    for rec in records:
        for aff in rec.get("affected", []):
            pkg = aff.get("package") or {}
            eco = str(pkg.get("ecosystem", "")).split(":", 1)[0]
            for c in index.get(key(eco, str(pkg.get("name", ""))), []):
                v = c["version"]
                if v in aff.get("versions", []) or _in_ranges(eco, v, aff.get("ranges", [])):
                    out.append(f"{eco} {c['name']}=={v}: {rec['id']}")
    return sorted(set(out))


def scan(components: list[dict], db: Path | None, mode: str) -> tuple[LaneResult, dict]:
    """The lane's verdict and the scan report written beside the image's evidence."""
    if db is None:
        status = FAIL if mode == "release" else WARN
        effect = "blocks in release mode" if status == FAIL else "DEVELOPMENT MODE: a warning, NOT a pass"
        summary = f"{NOT_SCANNED}: set Z4_VULN_DB to the bank's OSV mirror file ({effect})"
        return LaneResult("image-scan", status, summary), {"status": status, "summary": summary,
                                                           "database": None, "findings": []}
    records = load_db(db)
    found = findings(components, records)
    db_facts = {"path": str(db), "sha256": sha256_file(db) if db.is_file() else "folder",
                "records": len(records),
                "newest_modified": max((str(r.get("modified", "")) for r in records), default="")}
    if found:
        summary = f"{len(found)} known-vulnerable package(s) in the image: {found[0]}"
        result = LaneResult("image-scan", FAIL, summary, found)
    else:
        summary = f"{len(components)} image packages checked against {len(records)} advisories: none affected"
        result = LaneResult("image-scan", PASS, summary)
    return result, {"status": result.status, "summary": summary, "database": db_facts, "findings": found}
