"""What a package must hold, and the one lineage its evidence is bound to.

The required-evidence list is the stage table's (every packaged stage and every gate it owns) plus the
files the lineage checks read, plus what the policy adds (`evidence.files`); the policy can only add.
The list goes into the signed verification summary, and a verifier compares it with its own copy of
the stage table: a package signed with a shorter list is refused. The lineage (snapshot and contract
hashes, split file digest, model state_dict digest and weights file digest, and each stage's
consumed/produced digests) goes there too, and every packaged file that records one of them must agree.
"""

from __future__ import annotations

import json
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file
from z4_assets.core.run_folder import FILES

SPLIT_FILE = "lineage/split.parquet"  # the row split the lineage names (row -> train/validation/test)
MANIFEST_FILE = f"reports/snapshot/{FILES['snapshot']['manifest']}"
CONFIG_FILE = f"model/{FILES['model']['config']}"
# The model artifact: the one file of these that model_config.json names (never a pickle).
ARTIFACT_FILES = tuple(f"model/{FILES['model'][k]}" for k in ("weights", "onnx"))
WEIGHTS_FILE = ARTIFACT_FILES[0]
# Files the verifier itself reads to check the lineage: always required (plus the artifact the config names).
LINEAGE_FILES = (MANIFEST_FILE, CONFIG_FILE, SPLIT_FILE, "metadata.json", "sbom/sbom.json")
LINEAGE_KEYS = ("snapshot", "contract", "split", "model", "weights_sha256")
# JSON keys under which a packaged report records a digest of its lineage -> the lineage entry.
RECORDED = {"dataset_hash": "snapshot", "contract_hash": "contract", "state_dict_sha256": "model",
            "model_state_dict_sha256": "model", "split_sha256": "split"}
SKIP_SCAN = ("sbom/", "signatures/", "checksums.json")


def _no_twins(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        twin = next(k for k in keys if keys.count(k) > 1)
        raise Z4Error(f"JSON object has the key {twin!r} twice: readers could disagree on its value")
    return dict(pairs)


def read_json_once(path: Path):
    """A package JSON file with one reading only: a key written twice is refused, not resolved."""
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_twins)
    except Z4Error as e:
        raise Z4Error(str(e), path) from None


def required_evidence(extra_files: list[str] | tuple[str, ...] = ()) -> dict:
    """{"stages": {stage: [gate, ...]}, "files": [...]}: the stage table's list plus EXTRA_FILES."""
    from z4_assets.core.stages import packaged_stages, required_evidence as table

    stages = {name: list(gates) for name, gates in table().items()}
    gates_files = [f"{s.package_dir}/gates.json" for s in packaged_stages()]
    return {"stages": stages, "files": sorted({*LINEAGE_FILES, *gates_files, *extra_files})}


def missing_evidence(required: dict, gates: list[dict], files: set[str]) -> list[str]:
    """What REQUIRED names that the package lacks: 'stage fairness', 'gate fairness/x', 'file a/b'."""
    present = {(g["stage"], g["gate"]) for g in gates}
    stages = {g["stage"] for g in gates}
    out = [f"stage {s}" for s in required["stages"] if s not in stages]
    out += [f"gate {s}/{g}" for s, gs in required["stages"].items() if s in stages for g in gs
            if (s, g) not in present]
    return out + [f"file {f}" for f in required["files"] if f not in files]


def shortened(signed: dict, own: dict) -> list[str]:
    """What the verifier's own list requires that the package's signed list leaves out."""
    out = [f"stage {s}" for s in own["stages"] if s not in signed.get("stages", {})]
    out += [f"gate {s}/{g}" for s, gs in own["stages"].items() if s in signed.get("stages", {})
            for g in gs if g not in signed["stages"][s]]
    return out + [f"file {f}" for f in own["files"] if f not in signed.get("files", [])]


def lineage_statement(inputs: dict, consumed, weights_sha256: str) -> dict:
    """The lineage the package is bound to, and each stage's own digests (INPUTS: stage -> outcome)."""
    top = {k: v for k, v in consumed.model_dump().items() if k in LINEAGE_KEYS}
    stages = {name: {"run_id": o.run_id, "consumed": o.consumed.model_dump(exclude_none=True),
                     "produced": o.produced.model_dump(exclude_none=True)} for name, o in inputs.items()}
    return {**top, "weights_sha256": weights_sha256, "stages": stages}


def artifact_file(pkg: Path) -> str:
    """The model artifact model_config.json names, refused unless it is one the factory ships."""
    name = read_json_once(pkg / CONFIG_FILE).get("artifact", FILES["model"]["weights"])
    rel = f"model/{name}"
    if rel not in ARTIFACT_FILES:
        raise Z4Error(f"{CONFIG_FILE} names artifact {name!r}, not one of {', '.join(ARTIFACT_FILES)}")
    if not (pkg / rel).is_file() or (pkg / rel).is_symlink():
        raise Z4Error(f"missing {rel}: the lineage cannot be checked without it")
    return rel


def _agree(what: str, recorded, expected: str, key: str) -> None:
    if recorded != expected:
        raise Z4Error(f"{what} records {key} {str(recorded)[:16]}... but the signed lineage says {expected[:16]}...")


def _scan(doc, where: str, lineage: dict, found: list[str]) -> None:
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in RECORDED and isinstance(v, str):
                _agree(where, v, lineage[RECORDED[k]], RECORDED[k])
                found.append(where)
            else:
                _scan(v, where, lineage, found)
    elif isinstance(doc, list):
        for v in doc:
            _scan(v, where, lineage, found)


def check_lineage(pkg: Path, lineage: dict, provenance: dict) -> str:
    """Every digest of LINEAGE against the packaged files; raises Z4Error naming the first disagreement."""
    for rel in LINEAGE_FILES:
        if not (pkg / rel).is_file():
            raise Z4Error(f"missing {rel}: the lineage cannot be checked without it")
    for key in LINEAGE_KEYS:
        if not isinstance(lineage.get(key), str) or len(lineage[key]) != 64:
            raise Z4Error(f"the signed lineage names no {key} digest")
    for name, entry in (lineage.get("stages") or {}).items():
        for side in ("consumed", "produced"):
            for key, value in (entry.get(side) or {}).items():
                if key in lineage and value != lineage[key]:
                    _agree(f"stage {name} ({side})", value, lineage[key], key)
    manifest = read_json_once(pkg / MANIFEST_FILE)
    _agree(MANIFEST_FILE, manifest.get("hash"), lineage["snapshot"], "snapshot")
    _agree(MANIFEST_FILE, manifest.get("contract_hash"), lineage["contract"], "contract")
    artifact = artifact_file(pkg)
    _agree(artifact, sha256_file(pkg / artifact), lineage["weights_sha256"], "weights_sha256")
    _agree(SPLIT_FILE, sha256_file(pkg / SPLIT_FILE), lineage["split"], "split")
    deps = provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
    z3 = [d for d in deps if str(d.get("uri", "")).startswith("z3://")]
    if not z3:
        raise Z4Error("the provenance names no z3:// snapshot")
    _agree("the provenance", z3[0]["digest"]["sha256"], lineage["snapshot"], "snapshot")
    _agree("the provenance", z3[0].get("annotations", {}).get("contract_sha256"), lineage["contract"], "contract")
    found: list[str] = []
    for p in sorted(pkg.rglob("*.json")):
        rel = p.relative_to(pkg).as_posix()
        if not rel.startswith(SKIP_SCAN) and rel != MANIFEST_FILE:
            _scan(read_json_once(p), rel, lineage, found)
    for rel in (CONFIG_FILE, "metadata.json"):
        if rel not in found:
            raise Z4Error(f"{rel} records no model digest")
    return (f"snapshot {lineage['snapshot'][:12]}, split {lineage['split'][:12]}, model {lineage['model'][:12]}: "
            f"manifest, weights, split file, provenance and {len(found)} recorded digests in "
            f"{len(set(found))} files agree")
