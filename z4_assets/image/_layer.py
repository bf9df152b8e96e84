"""The project's own layer: its wheel, built from the files git tracks, installed under /opt/z4.

Kept apart from the root filesystem (_rootfs.py) so that a code change rebuilds seconds of layer,
not the ten minutes of Debian and the lock.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.image._rootfs import VENV, _clean_env, _run


def project_wheel(root: Path, dest: Path, epoch: int) -> Path:
    """The project's own wheel, built from the files git tracks (no stray build/ leftovers)."""
    import tempfile

    files = _run(["git", "-C", str(root), "ls-files", "-z"], "listing the project's files").split("\0")
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("z4_model_factory-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="z4-src-") as tmp:
        for rel in filter(None, files):
            src = root / rel
            if src.is_file() and not src.is_symlink():
                (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, Path(tmp) / rel)
        env = {**_clean_env(epoch), "PIP_NO_INDEX": "1"}
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
              "--wheel-dir", str(dest), tmp], "building the project's wheel", env=env)
    found = sorted(dest.glob("z4_model_factory-*.whl"))
    if len(found) != 1:
        raise Z4Error("building the project's wheel produced no single z4_model_factory wheel", dest)
    return found[0]



def project_layer(wheel: Path, out_tar: Path, epoch: int) -> Path:
    """The project's wheel installed under /opt/z4 as its own tar layer: sorted, owner 0, mtimes EPOCH,
    console scripts pointing at the image's python, .pyc compiled from the same bytes every time."""
    import tarfile
    import tempfile

    with tempfile.TemporaryDirectory(prefix="z4-layer-") as tmp:
        stage = Path(tmp) / "root"
        # --ignore-installed: with --root/--prefix pip still "replaces" the project installed in the running
        # environment, i.e. uninstalls the developer's (or CI's) own editable install; never touch it
        _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-compile", "--ignore-installed",
              "--no-warn-script-location", "--root", str(stage), "--prefix", VENV, str(wheel)],
             "installing the project's wheel into its layer", env=_clean_env(epoch))
        site = next(stage.glob("opt/z4/lib/python3*/site-packages"))
        for direct in site.glob("*.dist-info/direct_url.json"):  # names the host's wheel path: not reproducible
            record = direct.with_name("RECORD")
            record.write_text("".join(ln for ln in record.read_text().splitlines(True)
                                      if not ln.startswith(f"{direct.parent.name}/direct_url.json,")))
            direct.unlink()
        for script in (stage / "opt/z4/bin").glob("*"):
            lines = script.read_bytes().split(b"\n", 1)
            if lines[0].startswith(b"#!"):
                script.write_bytes(b"#!" + VENV.encode() + b"/bin/python\n" + lines[1])
        _run([sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash",
              "-s", str(stage), "-p", "/", str(site / "z4_assets")], "compiling the project's layer")

        def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = epoch
            return info

        tmp_tar = out_tar.with_name(out_tar.name + ".part")
        with tarfile.open(tmp_tar, "w", format=tarfile.GNU_FORMAT) as tar:
            for p in sorted(stage.rglob("*")):
                tar.add(p, arcname=p.relative_to(stage).as_posix(), recursive=False, filter=clean)
        os.replace(tmp_tar, out_tar)
    return out_tar
