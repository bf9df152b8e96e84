"""The image's SBOM: what is inside the image, read from the image's own files, not from the host.

Debian packages come from the image's dpkg status database, Python packages from the dist-info
folders of its site-packages. The BOM is CycloneDX 1.6 JSON, checked against the bundled schema.
"""

from __future__ import annotations

import email.parser
import uuid
from datetime import datetime, timezone
from pathlib import Path

from z4_assets.core.errors import Z4Error

DPKG_STATUS = "var/lib/dpkg/status"
SITE_PACKAGES = "opt/z4/lib/python3.11/site-packages"
DEBIAN_DISTRO = "debian-12"


def debian_packages(rootfs: Path) -> list[dict]:
    """name, version, arch of every installed package ('install ok installed') in the image."""
    status = rootfs / DPKG_STATUS
    if not status.is_file():
        raise Z4Error("the image has no dpkg status database", status)
    out = []
    for block in status.read_text(encoding="utf-8").split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        if fields.get("Package") and fields.get("Status", "").endswith(" installed"):
            source = fields.get("Source", fields["Package"]).split(" ", 1)[0]
            out.append({"name": fields["Package"], "version": fields["Version"],
                        "arch": fields.get("Architecture", ""), "source": source})
    return sorted(out, key=lambda p: p["name"])


def python_packages(rootfs: Path) -> list[dict]:
    """name and version from every *.dist-info/METADATA of the image's virtual environment."""
    site = rootfs / SITE_PACKAGES
    if not site.is_dir():
        raise Z4Error("the image has no site-packages where the factory's venv should be", site)
    out = []
    for meta in sorted(site.glob("*.dist-info/METADATA")):
        msg = email.parser.Parser().parsestr(meta.read_text(encoding="utf-8", errors="replace"), headersonly=True)
        if msg.get("Name") and msg.get("Version"):
            out.append({"name": msg["Name"], "version": msg["Version"]})
    return sorted(out, key=lambda p: p["name"].lower())


def _deb_purl(p: dict) -> str:
    return f"pkg:deb/debian/{p['name']}@{p['version']}?arch={p['arch']}&distro={DEBIAN_DISTRO}"


def _pypi_purl(p: dict) -> str:
    from packaging.utils import canonicalize_name

    return f"pkg:pypi/{canonicalize_name(p['name'])}@{p['version']}"


def image_sbom(rootfs: Path, image: str, digest: str) -> dict:
    """A CycloneDX 1.6 BOM whose subject is the image (by digest) and whose components are its packages."""
    from z4_assets.core.sbom import check_schema

    debs, pys = debian_packages(rootfs), python_packages(rootfs)
    if not debs or not pys:
        raise Z4Error(f"the image lists {len(debs)} Debian and {len(pys)} Python packages; both must be > 0")
    components = [{"type": "library" if not p["name"].startswith("python3") else "application",
                   "bom-ref": _deb_purl(p), "name": p["name"], "version": p["version"], "purl": _deb_purl(p),
                   "properties": [{"name": "z4:source", "value": "dpkg"},
                                  {"name": "z4:deb-source-package", "value": p["source"]}]} for p in debs]
    components += [{"type": "library", "bom-ref": _pypi_purl(p), "name": p["name"], "version": p["version"],
                    "purl": _pypi_purl(p), "properties": [{"name": "z4:source", "value": "python-dist-info"}]}
                   for p in pys]
    doc = {
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{image}@{digest}')}",
        "metadata": {
            "timestamp": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "component": {"type": "container", "bom-ref": f"{image}@{digest}", "name": image, "version": digest,
                          "hashes": [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}]},
            "tools": {"components": [{"type": "application", "name": "z4 image sbom"}]},
        },
        "components": components,
    }
    check_schema(doc, "image sbom")
    return doc


def components(doc: dict) -> list[dict]:
    """{ecosystem, name, version, source} of every component of an image SBOM ('Debian' or 'PyPI')."""
    out = []
    for c in doc.get("components", []):
        purl = c.get("purl", "")
        eco = "Debian" if purl.startswith("pkg:deb/") else "PyPI" if purl.startswith("pkg:pypi/") else "other"
        props = {p["name"]: p["value"] for p in c.get("properties", [])}
        out.append({"ecosystem": eco, "name": c["name"], "version": c["version"],
                    "source": props.get("z4:deb-source-package", c["name"])})
    return out
