"""Where a run may write and what cleanup may touch: its scratch and its run folder, nothing else.

Every path cleanup or retention acts on goes through `contained`, so a record that points at
`/`, at `..` or through a symlink out of the run's folders is refused instead of followed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from z4_assets.core.errors import Z4Error


def contained(path: str | os.PathLike, base: str | os.PathLike) -> Path | None:
    """PATH (absolute, or relative to BASE) if it lies strictly inside BASE, else None.

    '..' and symlinked parent folders are resolved first; the last component is not, so a
    symlink inside BASE is itself a target (removing it removes the link, never what it points to).
    """
    base_real = Path(os.path.realpath(base))
    p = Path(path)
    if not str(path) or p.name in ("", ".", ".."):
        return None
    p = p if p.is_absolute() else Path(base) / p
    candidate = Path(os.path.realpath(p.parent)) / p.name
    if candidate == base_real or not candidate.is_relative_to(base_real):
        return None
    return candidate


def tree_files(root: Path) -> list[Path]:
    """Every file and symlink under ROOT, sorted; symlinked folders are listed, not entered."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        d = Path(dirpath)
        out += [d / n for n in filenames]
        out += [d / n for n in dirnames if (d / n).is_symlink()]
    return sorted(out)


def remove(target: Path, base: Path) -> int:
    """Delete a file, symlink or folder strictly inside BASE (links are not followed); bytes freed.

    The containment check lives here, not only in the callers, so no caller can delete `/`,
    a parent of BASE or anything outside it by mistake.
    """
    target = Path(target)
    if contained(target, base) != Path(os.path.realpath(target.parent)) / target.name:
        raise Z4Error(f"refusing to delete a path outside {base}", target)
    if target.is_symlink() or target.is_file():
        size = target.lstat().st_size
        target.unlink()
        return size
    if target.is_dir():
        size = sum(f.lstat().st_size for f in tree_files(target))
        shutil.rmtree(target)
        return size
    return 0


def prune_empty_dirs(root: Path) -> None:
    """Remove folders left empty under ROOT (ROOT itself stays)."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False, followlinks=False):
        d = Path(dirpath)
        if d != root and not d.is_symlink() and not any(d.iterdir()):
            d.rmdir()
