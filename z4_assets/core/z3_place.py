"""A snapshot is what its place says it is: no symlinks anywhere in it, and a manifest whose dataset id,
snapshot id and data hash agree with the folder it sits in.

Without these, a snapshot folder (or its data file) linked out of the Z3 root, a snapshot copied
under another dataset id, or a snapshot id whose hash suffix names other data would all be read
as if they were what their path says.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from z4_assets.core.errors import Z4Error

HASH_SUFFIX_CHARS = 12  # a snapshot id ends with -<first 12 hex digits of the data's sha256>


def refuse_links(root: str | Path, dataset_id: str, snapshot_id: str) -> None:
    """Z4Error unless ROOT/dataset_id, its snapshot folder and every entry in it are real (not links)
    and every entry is a regular file. ROOT itself may be a link: that is where the operator put it."""
    ds = Path(root) / dataset_id
    snap = ds / snapshot_id
    for folder in (ds, snap):
        try:
            st = os.lstat(folder)
        except FileNotFoundError:
            raise Z4Error("no such snapshot folder", folder) from None
        if stat.S_ISLNK(st.st_mode):
            raise Z4Error("refusing a symlinked snapshot folder (a snapshot must live inside the Z3 root)", folder)
        if not stat.S_ISDIR(st.st_mode):
            raise Z4Error("not a folder", folder)
    with os.scandir(snap) as it:
        for entry in it:
            if entry.is_symlink():
                raise Z4Error("refusing a symlink inside a snapshot (every file must live in the snapshot)",
                              entry.path)
            if not entry.is_file(follow_symlinks=False):
                raise Z4Error("refusing a snapshot entry that is not a regular file", entry.path)


def check_identity(manifest: dict, dataset_id: str, snapshot_id: str, where: object) -> None:
    """Z4Error unless the manifest names this dataset id and snapshot id, and the snapshot id's hash
    suffix is the start of the manifest's data hash."""
    named = (manifest.get("dataset_id"), manifest.get("snapshot_id"))
    if named[0] != dataset_id:
        raise Z4Error(f"manifest names dataset {named[0]!r} but sits under {dataset_id!r} "
                      "(a snapshot copied under another dataset id?)", where)
    if named[1] != snapshot_id:
        raise Z4Error(f"manifest names snapshot {named[1]!r} but sits in {snapshot_id!r}", where)
    data_hash = manifest.get("hash")
    suffix = snapshot_id.rpartition("-")[2]
    if not isinstance(data_hash, str) or len(suffix) != HASH_SUFFIX_CHARS or not data_hash.startswith(suffix):
        raise Z4Error(f"snapshot id {snapshot_id!r} does not end with the data hash's first "
                      f"{HASH_SUFFIX_CHARS} hex digits ({str(data_hash)[:HASH_SUFFIX_CHARS]})", where)
