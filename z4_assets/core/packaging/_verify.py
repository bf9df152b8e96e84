"""`z4 verify`: offline proof that a package is signed, complete, untampered and fully PASS."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file
from z4_assets.core.packaging import _evidence as evidence
from z4_assets.core.packaging._archive import ArchiveLimits, check_folder, extract_tarball
from z4_assets.core.packaging._attest import PROVENANCE_FILE, SUMMARY_FILE, gates_from_package
from z4_assets.core.packaging._layout import CHECKSUMS, package_files, unsigned_extras
from z4_assets.core.packaging._signing import verify_signature


@dataclass
class VerifyReport:
    package: str
    checks: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c["ok"] for c in self.checks)

    @property
    def first_problem(self) -> str | None:
        bad = [c for c in self.checks if not c["ok"]]
        return f"{bad[0]['check']}: {bad[0]['detail']}" if bad else None

    def as_dict(self) -> dict:
        return {"package": self.package, "ok": self.ok, "first_problem": self.first_problem,
                "checks": self.checks, "seconds": round(self.seconds, 3)}


def _load_json(pkg: Path, rel: str) -> dict:
    try:
        return evidence.read_json_once(pkg / rel)
    except FileNotFoundError:
        raise Z4Error(f"missing {rel}", pkg) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Z4Error(f"{rel} is not valid JSON: {e}", pkg) from None


def _no_pickle(pkg, *_):
    """No file of the package is a pickle (or a torch.save zip): loading it could run code."""
    from z4_assets.core.training import pickles_in

    if found := pickles_in(pkg):
        raise Z4Error(f"refusing a pickle file in the package: {found[0]} (a model ships as ONNX or "
                      "safetensors; unpickling can execute code)")
    return "no pickle file in the package"


def _signature(pkg, public_key, identity, issuer):
    verify_signature(pkg, public_key, identity, issuer)
    return "signature covers every file"


def _checksums(pkg, *_):
    if extra := unsigned_extras(pkg):
        raise Z4Error(f"file not covered by the signature: {extra[0]} (only the signature itself may be)")
    recorded = _load_json(pkg, CHECKSUMS)["files"]
    actual = set(package_files(pkg)) - {CHECKSUMS}
    if missing := sorted(set(recorded) - actual):
        raise Z4Error(f"file listed in checksums.json is missing: {missing[0]}")
    if extra := sorted(actual - set(recorded)):
        raise Z4Error(f"file not listed in checksums.json: {extra[0]}")
    for rel, digest in sorted(recorded.items()):
        if sha256_file(pkg / rel) != digest:
            raise Z4Error(f"checksum mismatch: {rel}")
    return f"{len(recorded)} files match checksums.json"


def _subjects(pkg, *_):
    n = 0
    for rel in (PROVENANCE_FILE, SUMMARY_FILE):
        for s in _load_json(pkg, rel)["subject"]:
            path = pkg / s["name"]
            if not path.is_file() or sha256_file(path) != s["digest"]["sha256"]:
                raise Z4Error(f"{rel}: subject {s['name']} does not match the file")
            n += 1
    return f"{n} statement subjects match their files"


def _gates(pkg, *_):
    pred = _load_json(pkg, SUMMARY_FILE)["predicate"]
    gates = pred["gates"]
    if not gates:
        raise Z4Error("the verification summary lists no gates")
    for g in gates:
        if g["verdict"] not in ("PASS", "INSUFFICIENT_EVIDENCE") or g.get("blocks", g["verdict"] != "PASS"):
            raise Z4Error(f"gate {g['stage']}/{g['gate']} is {g['verdict']}"
                          f"{' (blocks)' if g['verdict'] == 'INSUFFICIENT_EVIDENCE' else ''} "
                          f"(measured {g['measured']} {g['comparison']} {g['threshold']})")
        ev = pkg / g["evidence"]
        if not ev.is_file() or sha256_file(ev) != g["evidence_sha256"]:
            raise Z4Error(f"gate {g['gate']}: evidence {g['evidence']} does not match its digest")
    if pred["verificationResult"] != "PASSED":
        raise Z4Error(f"verification result is {pred['verificationResult']}")
    short = sum(g["verdict"] == "INSUFFICIENT_EVIDENCE" for g in gates)
    return f"{len(gates)} gates PASS" + (f" ({short} with insufficient evidence, allowed by the policy)" if short else "")


def _lineage(pkg, *_):
    return evidence.check_lineage(pkg, _load_json(pkg, SUMMARY_FILE)["predicate"]["lineage"],
                                  _load_json(pkg, PROVENANCE_FILE))


def _required(pkg, *_):
    """The signed list is at least the verifier's own (stage table), and the package holds all of it."""
    pred = _load_json(pkg, SUMMARY_FILE)["predicate"]
    signed = pred.get("requiredEvidence")
    if not isinstance(signed, dict):
        raise Z4Error("the verification summary names no required evidence")
    if short := evidence.shortened(signed, evidence.required_evidence()):
        raise Z4Error(f"the signed list of required evidence leaves out {', '.join(short)} "
                      "(this verifier's stage table requires it)")
    recomputed = {(g["stage"], g["gate"], g["verdict"]) for g in gates_from_package(pkg)}
    listed = {(g["stage"], g["gate"], g["verdict"]) for g in pred["gates"]}
    if recomputed != listed:
        diff = sorted(recomputed ^ listed)[0]
        raise Z4Error(f"the summary's gates differ from the packaged gates.json files at {diff[0]}/{diff[1]}")
    if missing := evidence.missing_evidence(signed, pred["gates"], set(package_files(pkg))):
        raise Z4Error(f"required evidence missing: {', '.join(missing)}")
    n = sum(len(g) for g in signed["stages"].values())
    return f"{len(signed['stages'])} stages, {n} gates and {len(signed['files'])} files required, all present"


def _sbom(pkg, *_):
    deps = _load_json(pkg, PROVENANCE_FILE)["predicate"]["buildDefinition"]["resolvedDependencies"]
    recorded = [d["digest"]["sha256"] for d in deps if d["uri"] == "sbom/sbom.json"]
    if not recorded:
        raise Z4Error("provenance records no SBOM digest")
    if sha256_file(pkg / "sbom" / "sbom.json") != recorded[0]:
        raise Z4Error("sbom/sbom.json does not match the digest in the provenance")
    return "SBOM digest matches the provenance"


def _image(pkg, public_key, *_):
    """The training image the provenance names is the one the package's signed image statement names."""
    from z4_assets.core.packaging._image import digest_problem, packaged_image_digest

    digest = packaged_image_digest(pkg)
    if digest == "none":
        return "trained outside the training image (container_digest none; promotion decides)"
    if problem := digest_problem(digest, pkg, public_key):
        raise Z4Error(problem)
    return f"trained in {digest[:23]}..., the image the signed statement in image/ names"


def _origin(pkg, *_, check, z3_public_key):
    return check(pkg, z3_public_key)


# In order; the first failure is the one reported. Integrity first, then the evidence a release needs
# (promotion's release_gates_pass reads EVIDENCE_CHECKS, package_verified the rest); verify_package
# appends the Z3 snapshot-origin check last.
CHECKS = [("no_pickle", _no_pickle), ("signature", _signature), ("checksums", _checksums), ("statements", _subjects),
          ("lineage", _lineage), ("sbom", _sbom), ("image", _image), ("required", _required), ("gates", _gates)]
EVIDENCE_CHECKS = ("required", "gates")


def _open(src: Path, tmp: Path, limits: ArchiveLimits) -> Path:
    if src.is_symlink():
        raise Z4Error("the package path is a symlink", src)
    if src.is_file():
        return extract_tarball(src, tmp, limits)
    if not src.is_dir():
        raise Z4Error("no such package", src)
    check_folder(src, limits)
    return src


def verify_package(path: str | Path, public_key: str | Path | None = None,
                   identity: str | None = None, issuer: str | None = None,
                   limits: ArchiveLimits | None = None,
                   z3_public_key: str | Path | None = None) -> VerifyReport:
    """Run every check in order; the first failure is the one reported. LIMITS: the archive's (the
    settings' `package_limits`; defaults when not given). Z3_PUBLIC_KEY: check the snapshot
    manifest's Z3 signature too (core/packaging/_snapshot_origin.py)."""
    from functools import partial

    from z4_assets.core.packaging._snapshot_origin import check_snapshot_origin

    checks = [*CHECKS, ("z3_snapshot", partial(_origin, check=check_snapshot_origin, z3_public_key=z3_public_key))]
    start = time.perf_counter()
    src = Path(path)
    report = VerifyReport(str(src))
    with tempfile.TemporaryDirectory(prefix="z4-verify-") as tmp:
        try:
            pkg = _open(src, Path(tmp), limits or ArchiveLimits())
        except Z4Error as e:
            report.checks.append({"check": "package", "ok": False, "detail": str(e)})
            return report
        for name, fn in checks:
            try:
                detail = fn(pkg, public_key, identity, issuer)
                report.checks.append({"check": name, "ok": True, "detail": detail})
            except (Z4Error, KeyError, TypeError, AttributeError, ValueError, OSError) as e:
                detail = str(e) if isinstance(e, Z4Error) else f"malformed package ({type(e).__name__}: {e})"
                report.checks.append({"check": name, "ok": False, "detail": detail})
                break
    report.seconds = time.perf_counter() - start
    return report
