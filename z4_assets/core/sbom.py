"""CycloneDX SBOM of the Python environment the code runs in: what was really installed, by version.

One generator for everyone: the CI build artifact (`z4 ci-gate`) and the signed package both call
`generate_sbom`, and the output is reproducible (no timestamp, no random serial number), so the
same environment gives the same digest and two SBOMs can be compared by digest alone.

cyclonedx-py validates its own output against the CycloneDX schema with every string format
checked; the IRI format checks of ~200 components' URLs took 41 of its 44 s here. We validate the
same output against the same bundled schema (structure, types, required fields, enums) without the
format checks: 0.8 s, and a malformed SBOM is still never published.
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404 # runs cyclonedx-py's CLI with a fixed argv, never a shell
import sys
import tempfile
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file
from z4_assets.core.settings import child_env

SPEC_VERSION = "1.6"
_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def environment_fingerprint() -> str:
    """sha256 over the sorted `name==version` of every installed distribution."""
    import hashlib
    from importlib import metadata

    pins = sorted({f"{d.metadata['Name'].lower()}=={d.version}" for d in metadata.distributions()
                   if d.metadata["Name"]})
    return hashlib.sha256("\n".join(pins).encode()).hexdigest()


def generate_sbom(out_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                  python: str | None = None) -> str:
    """Write the CycloneDX JSON SBOM of `python`'s environment (default: this interpreter's) to
    out_path, atomically, and return its sha256 hex digest. Takes ~15 s; needs no network.

    The output is reproducible, so with cache_dir a copy keyed by the installed-package set is
    reused by later runs in the same environment (the factory builds one package per run).
    """
    target = Path(out_path)
    cached = Path(cache_dir) / f"sbom-{environment_fingerprint()}.json" if cache_dir and not python else None
    if cached and cached.is_file():
        from z4_assets.core.files import atomic_write_bytes

        atomic_write_bytes(target, cached.read_bytes())
        return sha256_file(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    cmd = [
        sys.executable,
        "-m",
        "cyclonedx_py",
        "environment",
        "--output-reproducible",
        "--sv",
        SPEC_VERSION,
        "--of",
        "JSON",
        "--no-validate",  # validated below, without the slow IRI format checks
        "-o",
        tmp,
    ]
    if _PYPROJECT.is_file():  # names the root component after the project
        cmd += ["--pyproject", str(_PYPROJECT)]
    cmd.append(python or sys.executable)
    try:
        proc = subprocess.run(  # nosec B603 # fixed argv, no shell
            cmd, capture_output=True, text=True, timeout=600, check=False, env=child_env()
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise Z4Error(f"cyclonedx-py failed (exit {proc.returncode}): {last}", target)
        check_schema(json.loads(Path(tmp).read_text(encoding="utf-8")), target)  # never publish a malformed SBOM
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    if cached:
        from z4_assets.core.files import atomic_write_bytes

        atomic_write_bytes(cached, target.read_bytes())
    return sha256_file(target)


def check_schema(doc: dict, where: object = "sbom") -> None:
    """DOC is a valid CycloneDX 1.6 JSON BOM (the schema cyclonedx-python-lib ships), format checks aside."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    strict = JsonStrictValidator(SchemaVersion.V1_6)._validator  # the library's own validator and schema registry
    plain = type(strict)(strict.schema, registry=strict._registry)  # same schema, no format checker
    error = next(iter(plain.iter_errors(doc)), None)
    if error is not None:
        at = "/".join(str(x) for x in error.absolute_path) or "(root)"
        raise Z4Error(f"not a valid CycloneDX {SPEC_VERSION} SBOM at {at}: {error.message[:200]}", where)


def sbom_components(path: str | os.PathLike) -> dict[str, str]:
    """{canonical package name: version} of every component in a CycloneDX JSON SBOM."""
    from packaging.utils import canonicalize_name

    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return {canonicalize_name(c["name"]): c.get("version", "") for c in doc.get("components", [])}
