"""The training image: built offline from the project's own files, described, scanned and signed by digest.

`build_image` is `z4 image build`: rootfs (mmdebstrap + the hashed lock), `podman build` of the
project's Dockerfile (FROM scratch), then the evidence in build/image/: image.json, the image's
CycloneDX SBOM, the scan report and the signed in-toto statement over the digest. An unchanged set
of inputs (lock, Dockerfile, build code, project files, commit time) reuses the image already built.
`trusted_image` is what every runner calls before starting the image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess  # nosec B404 # git and podman, fixed argv
import time
from dataclasses import dataclass
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import atomic_write_json, read_json, sha256_file
from z4_assets.core.packaging import IMAGE_EVIDENCE as EVIDENCE
from z4_assets.core.packaging import image_statement, named_digests, sign_image_statement, verify_image_statement
from z4_assets.image import _layer, _podman, _rootfs, _sbom, _scan
from z4_assets.image._podman import REPO

__all__ = ["EVIDENCE", "REPO", "ImageBuild", "build_image", "image_evidence", "trusted_image"]

_INPUT_PATHS = ("requirements.lock", "Dockerfile", "pyproject.toml", "README.md", "z4_assets")


@dataclass(frozen=True)
class ImageBuild:
    ref: str            # REPO@sha256:...
    digest: str
    reused: bool
    seconds: float
    scan: object        # buildlane LaneResult
    evidence_dir: Path


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,  # nosec B603 B607 # git, fixed argv
                         check=False)
    if out.returncode != 0:
        raise Z4Error(f"git {args[0]} failed: the image is built from a git checkout", root)
    return out.stdout


def source_date_epoch(root: Path) -> int:
    """The commit's time: every timestamp inside the image and its config."""
    return int(_git(root, "log", "-1", "--format=%ct").strip())


_BASE_INPUTS = ("requirements.lock", "z4_assets/image/_rootfs.py")


def base_epoch(root: Path) -> int:
    """The time of the last commit that changed the root filesystem's inputs."""
    return int(_git(root, "log", "-1", "--format=%ct", "--", *_BASE_INPUTS).strip() or source_date_epoch(root))


def rootfs_key(root: Path) -> str:
    """sha256 over the root filesystem's inputs: the lock, the build code, the Debian list, their time."""
    h = hashlib.sha256()
    for rel in _BASE_INPUTS:
        h.update(f"{rel}\0{sha256_file(root / rel)}\n".encode())
    h.update(f"{_rootfs.SUITE}\0{','.join(_rootfs.DEBIAN_PACKAGES)}\0{base_epoch(root)}\n".encode())
    return h.hexdigest()


def inputs_digest(root: Path, epoch: int) -> str:
    """sha256 over every input of the image: tracked files under _INPUT_PATHS, the Debian package
    list, the suite, the commit time. The same inputs reuse the image already built."""
    h = hashlib.sha256()
    files = sorted(f for f in _git(root, "ls-files", "-z", "--", *_INPUT_PATHS).split("\0") if f)
    for rel in files:
        p = root / rel
        if p.is_file():
            h.update(f"{rel}\0{sha256_file(p)}\n".encode())
    h.update(f"{_rootfs.SUITE}\0{','.join(_rootfs.DEBIAN_PACKAGES)}\0{epoch}\n".encode())
    return h.hexdigest()


def image_evidence(evidence_dir: Path) -> dict[str, Path]:
    return {role: evidence_dir / name for role, name in EVIDENCE.items()}


def _cached(tag: str, inputs: str, work_dir: Path) -> dict | None:
    """The facts of the image built from the same inputs, when it is still in podman's storage."""
    facts_path = work_dir / f"facts-{inputs[:16]}.json"
    if not (_podman.exists(tag) and facts_path.is_file()):
        return None
    facts = read_json(facts_path)
    ok = facts.get("inputs_digest") == inputs and facts.get("digest") == _podman.inspect(tag)["digest"]
    return facts if ok else None


def build_image(root: Path, evidence_dir: Path, work_dir: Path, signing_key, mode: str,
                vuln_db: Path | None, log=print, force: bool = False) -> ImageBuild:
    """Build (or reuse), describe, scan and sign the training image; evidence lands in EVIDENCE_DIR.
    SIGNING_KEY: the factory key's PEM path, or a TokenSigner (the key inside a PKCS#11 token)."""
    t0 = time.perf_counter()
    epoch = source_date_epoch(root)
    inputs = inputs_digest(root, epoch)
    git_sha = _git(root, "rev-parse", "HEAD").strip()  # read before the build: what the image was built from
    git_dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no").strip())
    tag = f"{REPO}:in-{inputs[:16]}"
    facts = None if force else _cached(tag, inputs, work_dir)
    reused = facts is not None
    if not reused:
        log(f"building {tag} (inputs sha256:{inputs[:16]}..., SOURCE_DATE_EPOCH={epoch})")
        ctx = work_dir / "context"
        shutil.rmtree(ctx, ignore_errors=True)  # the build context is exactly the two layers
        ctx.mkdir(parents=True)
        base_key = rootfs_key(root)
        base = work_dir / f"rootfs-{base_key[:16]}.tar"
        if not base.is_file():  # Debian + the lock: rebuilt only when they change (~10 min)
            log(f"root filesystem: mmdebstrap {_rootfs.SUITE} + requirements.lock -> {base.name}")
            for old in work_dir.glob("rootfs-*.tar"):
                old.unlink()
            wheels = _rootfs.download_wheels(root / "requirements.lock", work_dir / "wheels")
            _rootfs.build_rootfs(base, wheels, root / "requirements.lock", base_epoch(root))
        wheel = _layer.project_wheel(root, work_dir / "project", epoch)
        _layer.project_layer(wheel, ctx / "project.tar", epoch)
        os.link(base, ctx / "rootfs.tar")
        _podman.build(ctx, root / "Dockerfile", tag, epoch)
        info = _podman.inspect(tag)
        if info["user"] in ("", "0", "root") or info["user"].startswith(("0:", "root:")):
            raise Z4Error(f"the built image runs as {info['user'] or 'root'}; it must run as a non-root user")
        facts = {"image": REPO, "tag": tag, "digest": info["digest"], "image_id": info["id"],
                 "size_bytes": info["size"], "user": info["user"], "inputs_digest": inputs,
                 "source_date_epoch": epoch, "git_sha": git_sha, "git_dirty": git_dirty,
                 "lock_sha256": sha256_file(root / "requirements.lock"),
                 "rootfs_tar_sha256": sha256_file(base), "rootfs_key": base_key,
                 "project_layer_sha256": sha256_file(ctx / "project.tar"),
                 "debian_suite": _rootfs.SUITE, "debian_sources": list(_rootfs.SOURCES),
                 "debian_packages_requested": list(_rootfs.DEBIAN_PACKAGES),
                 "build_seconds": round(time.perf_counter() - t0, 1)}
        atomic_write_json(work_dir / f"facts-{inputs[:16]}.json", facts)
    _podman.podman("tag", tag, f"{REPO}:latest", what="podman tag")
    result = _describe_and_sign(facts, evidence_dir, signing_key, mode, vuln_db)
    return ImageBuild(ref=f"{REPO}@{facts['digest']}", digest=facts["digest"], reused=reused,
                      seconds=time.perf_counter() - t0, scan=result, evidence_dir=evidence_dir)


def _describe_and_sign(facts: dict, evidence_dir: Path, signing_key, mode: str, vuln_db: Path | None):
    """SBOM from the image's own files, the scan, the signed statement: written all or nothing."""
    ref = f"{REPO}@{facts['digest']}"
    mount = _podman.podman("image", "mount", ref, what="mounting the image").stdout.strip()
    try:
        sbom = _sbom.image_sbom(Path(mount), REPO, facts["digest"])
    finally:
        _podman.podman("image", "unmount", ref, what="unmounting the image", check=False)
    result, report = _scan.scan(_sbom.components(sbom), vuln_db, mode)
    staging = evidence_dir.with_name(evidence_dir.name + ".next")
    shutil.rmtree(staging, ignore_errors=True)
    files = image_evidence(staging)
    atomic_write_json(files["facts"], facts)
    atomic_write_json(files["sbom"], sbom)
    atomic_write_json(files["scan"], report)
    if not result.blocks:  # a blocked image is never signed, so no runner will start it
        stmt = image_statement(REPO, facts["digest"], {
            **{k: facts[k] for k in ("image_id", "inputs_digest", "git_sha", "git_dirty", "lock_sha256",
                                     "source_date_epoch", "debian_suite", "debian_sources")},
            "sbom": {"sha256": sha256_file(files["sbom"])}, "scan": {"status": result.status,
                                                                     "sha256": sha256_file(files["scan"])}})
        atomic_write_json(files["statement"], stmt)
        atomic_write_json(files["bundle"], sign_image_statement(stmt, signing_key))
    old = evidence_dir.with_name(evidence_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if evidence_dir.exists():
        evidence_dir.rename(old)
    staging.rename(evidence_dir)
    shutil.rmtree(old, ignore_errors=True)
    return result


def trusted_image(ref: str, evidence_dir: Path, public_key: str) -> str:
    """The digest REF resolves to, once the signed statement in EVIDENCE_DIR verifies and names it.

    Refuses: no statement (unsigned image), a bad signature, and a REF (tag) that points to any
    digest the statement does not name (a re-tagged image)."""
    stmt = verify_image_statement(evidence_dir / EVIDENCE["bundle"], public_key)
    named = named_digests(stmt)
    pinned = ref.rpartition("@")[2] if "@" in ref else None
    digest = _podman.inspect(ref)["digest"]
    if pinned and pinned != digest:
        raise Z4Error(f"image {ref} resolves to {digest}, not the digest it names")
    if digest not in named:
        raise Z4Error(f"image {ref} is {digest}, which the signed statement does not name "
                      f"(it names {', '.join(sorted(named)) or 'nothing'}): re-tagged or unsigned image refused")
    return digest


def container_command(settings, command: list[str], dagster_home: str, extra_ro: list[Path] = (),
                      cwd: Path | None = None, secrets_dir: Path | None = None) -> tuple[list[str], dict, str]:
    """(argv, env, digest) that run COMMAND (a `python -m ...` argv) inside the verified training image.

    The image Z4_IMAGE names is resolved to its digest and checked against the signed statement
    first (unsigned, badly signed or re-tagged: refused); podman then starts exactly that digest."""
    from z4_assets.image import _run

    cwd = cwd or Path.cwd()
    evidence = Path(settings.image_evidence)
    digest = trusted_image(settings.image, evidence, settings.signing_pubkey_path)
    stmt = verify_image_statement(evidence / EVIDENCE["bundle"], settings.signing_pubkey_path)
    binds = _run.mounts(settings, dagster_home, evidence, cwd) + [(Path(p).resolve(), "ro") for p in extra_ro]
    _run.prepare_writable(binds)
    binds += _run.secret_copies(settings, secrets_dir or Path(extra_ro[0]) / "secrets", cwd)
    argv = _run.container_argv(f"{REPO}@{digest}", digest, ["python", *command], binds, cwd,
                               stmt["predicate"]["git_sha"])
    return ["podman", *argv], _podman.env(), digest


def rebuild_command(settings, pkg: Path, source: str, flags: list[str], dagster_home: str,
                    secrets_dir: Path, cwd: Path | None = None) -> tuple[list[str], dict, str] | None:
    """(argv, env, digest) that retrain the package PKG inside the image it was trained in, or None
    for a package trained on a host. The image is the digest the package's provenance names, checked
    against the package's own signed image statement and present in local storage; never a tag."""
    from z4_assets.core.packaging import PACKAGE_IMAGE_DIR, digest_problem, packaged_image_digest
    from z4_assets.image import _run

    digest = packaged_image_digest(pkg)
    if digest == "none":
        return None
    problem = digest_problem(digest, pkg, settings.signing_pubkey_path)
    if problem:
        raise Z4Error(f"refusing to rebuild in the training image: {problem}", pkg)
    ref = f"{REPO}@{digest}"
    if _podman.inspect(ref)["digest"] != digest:
        raise Z4Error(f"image {ref} in local storage is not {digest}")
    cwd = cwd or Path.cwd()
    stmt = verify_image_statement(pkg / PACKAGE_IMAGE_DIR / EVIDENCE["bundle"], settings.signing_pubkey_path)
    src = Path(source).resolve()
    binds = _run.mounts(settings, dagster_home, pkg / PACKAGE_IMAGE_DIR, cwd)
    binds += [(src, "ro")] if src.exists() else []
    _run.prepare_writable(binds)
    binds += _run.secret_copies(settings, secrets_dir, cwd)
    inner = ["-m", "z4_assets.cli", "rebuild", str(src) if src.exists() else source, *flags]
    argv = _run.container_argv(ref, digest, ["python", *inner], binds, cwd, stmt["predicate"]["git_sha"])
    return ["podman", *argv], _podman.env(), digest
