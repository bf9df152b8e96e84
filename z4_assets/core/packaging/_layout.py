"""Assemble a run's evidence into the package layout, with a checksum for every file."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import atomic_write_json, sha256_file

CHECKSUMS = "checksums.json"
SIGNATURES = "signatures"
SIGNATURE_FILE = f"{SIGNATURES}/model.sig"
UNSIGNED = (SIGNATURE_FILE,)  # the only files the signature does not cover (it cannot cover itself)
INTERMEDIATE_SUFFIXES = (".parquet", ".tmp")


def package_files(root: Path, signed_only: bool = True) -> list[str]:
    """Every regular file under root, as sorted posix relative paths (SIGNED_ONLY: signatures/ excluded,
    as model-signing excludes it)."""
    files = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            raise Z4Error(f"symlinks are not allowed in a package: {rel}", root)
        if p.is_file() and not (signed_only and rel.startswith(f"{SIGNATURES}/")):
            files.append(rel)
    return files


def unsigned_extras(root: Path) -> list[str]:
    """Files the signature does not cover and that are not on the fixed UNSIGNED list."""
    return [rel for rel in package_files(root, signed_only=False)
            if rel.startswith(f"{SIGNATURES}/") and rel not in UNSIGNED]


def copy_evidence(outcomes: dict, pkg: Path) -> list[str]:
    """Copy the files each stage outcome names into its stage's package folder (the stage table's
    `package_dir`); the model card also lands at the top. Returns the stages copied.

    OUTCOMES: stage name -> outcome. Folders, intermediates (the row split) and hidden files stay out."""
    from z4_assets.core.stages import BY_NAME

    found = []
    for name, outcome in outcomes.items():
        stage = BY_NAME[name]
        if not stage.package_dir:
            continue
        found.append(name)
        for role, path in sorted(outcome.files.items()):
            src = Path(path)
            if not src.is_file() or src.name.endswith(INTERMEDIATE_SUFFIXES) or src.name.startswith("."):
                continue
            target = pkg / stage.package_dir / src.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            if role == "card":
                shutil.copyfile(src, pkg / "model_card.md")
    return found


def write_checksums(pkg: Path) -> dict[str, str]:
    sums = {rel: sha256_file(pkg / rel) for rel in package_files(pkg) if rel != CHECKSUMS}
    atomic_write_json(pkg / CHECKSUMS, {"algorithm": "sha256", "files": sums})
    return sums


def make_tarball(pkg: Path, out: Path) -> Path:
    """A reproducible tar.gz (sorted, zeroed owners and times), written atomically."""
    tmp = out.with_name(f".{out.name}.tmp")

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755 if info.isdir() or info.mode & 0o100 else 0o644  # canonical: see _archive
        return info

    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        for p in sorted(pkg.rglob("*")):
            tar.add(p, arcname=f"package/{p.relative_to(pkg).as_posix()}", recursive=False, filter=clean)
    os.replace(tmp, out)
    return out
