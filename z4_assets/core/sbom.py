"""CycloneDX SBOM of the running Python environment, cached per exact set of installed packages."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import atomic_write_bytes, sha256_file


def environment_fingerprint() -> str:
    """sha256 over the sorted `name==version` of every installed distribution."""
    pins = sorted({f"{d.metadata['Name'].lower()}=={d.version}" for d in metadata.distributions()
                   if d.metadata["Name"]})
    return hashlib.sha256("\n".join(pins).encode()).hexdigest()


def generate_sbom(out_path: str | Path, cache_dir: str | Path | None = None) -> str:
    """Write the SBOM to out_path (atomically) and return its sha256.

    `cyclonedx-py environment` takes ~15 s; the same environment gives the same component list,
    so a copy is cached under cache_dir keyed by the environment fingerprint.
    """
    out = Path(out_path)
    cached = Path(cache_dir) / f"sbom-{environment_fingerprint()}.json" if cache_dir else None
    if cached and cached.is_file():
        atomic_write_bytes(out, cached.read_bytes())
        return sha256_file(out)
    exe = shutil.which("cyclonedx-py") or str(Path(sys.executable).with_name("cyclonedx-py"))
    try:
        proc = subprocess.run([exe, "environment", "--of", "JSON", "--output-reproducible",
                               "-o", "-", sys.executable],
                              capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Z4Error(f"cannot run cyclonedx-py to build the SBOM: {e}") from None
    if proc.returncode != 0 or not proc.stdout.strip():
        raise Z4Error(f"cyclonedx-py failed: {proc.stderr.decode(errors='replace')[-300:]}")
    atomic_write_bytes(out, proc.stdout)
    if cached:
        atomic_write_bytes(cached, proc.stdout)
    return sha256_file(out)
