"""Licence verdicts over a CycloneDX SBOM: every component's declared licence is allowed, denied or
unknown by the policy (`licences` section). Used by the build lane's `licences` gate.

A component's `licenses` entries are all required (a file licensed under several terms is bound
by each), an SPDX expression is evaluated (`A OR B`: the better; `A AND B`: the worse; `X WITH
exception`: X, an exception only adds permissions), a trove classifier ("License :: OSI Approved ::
MIT License") is read as the SPDX id it names, and a component with no licence data, or a licence
the policy neither allows nor denies, is unknown: never a pass by omission.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

ALLOWED, UNKNOWN, DENIED = "allowed", "unknown", "denied"
_RANK = {ALLOWED: 0, UNKNOWN: 1, DENIED: 2}

# PyPI trove classifiers as cyclonedx-py copies them, read as the SPDX id they name (an unversioned
# GPL/LGPL classifier is taken at its widest reading, "-or-later").
CLASSIFIERS = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: BSD License": "BSD-3-Clause",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: GNU General Public License (GPL)": "GPL-2.0-or-later",
    "License :: OSI Approved :: GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "License :: OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "License :: OSI Approved :: GNU Affero General Public License v3": "AGPL-3.0-only",
    "License :: OSI Approved :: GNU Library or Lesser General Public License (LGPL)": "LGPL-2.0-or-later",
    "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "License :: Public Domain": "LicenseRef-Public-Domain",
}


@dataclass(frozen=True)
class Finding:
    component: str       # name==version
    declared: str        # what the SBOM says, as written
    status: str          # allowed, unknown or denied
    reason: str = ""     # policy exception that cleared it, or why it is unknown

    def line(self) -> str:
        return f"{self.component}: {self.status} ({self.declared})" + (f": {self.reason}" if self.reason else "")


@functools.lru_cache(maxsize=1)
def _licensing():
    """The SPDX licence index (built once: ~0.3 s each time)."""
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


def _spdx(expression: str, allowed: set[str], denied: set[str]) -> str:
    from license_expression import ExpressionError, LicenseWithExceptionSymbol

    licensing = _licensing()
    try:
        parsed = licensing.parse(expression, validate=False)
    except ExpressionError:
        return UNKNOWN

    def walk(node) -> str:
        if isinstance(node, LicenseWithExceptionSymbol):
            return walk(node.license_symbol)
        if isinstance(node, licensing.OR):
            return min((walk(a) for a in node.args), key=_RANK.get)
        if isinstance(node, licensing.AND):
            return max((walk(a) for a in node.args), key=_RANK.get)
        key = getattr(node, "key", str(node))
        return DENIED if key in denied else ALLOWED if key in allowed else UNKNOWN

    return walk(parsed) if parsed is not None else UNKNOWN


def _entry(lic: dict) -> str:
    if "expression" in lic:
        return str(lic["expression"])
    inner = lic.get("license") or {}
    if inner.get("id"):
        return str(inner["id"])
    name = str(inner.get("name", ""))
    return CLASSIFIERS.get(name, name)


def component_status(component: dict, policy) -> Finding:
    """POLICY: the `licences` section (allowed, denied, exceptions: {package: reason})."""
    ref = f"{component.get('name')}=={component.get('version', '')}"
    entries = [_entry(lic) for lic in component.get("licenses") or []]
    declared = " | ".join(entries) or "no licence data"
    exception = policy.exceptions.get(str(component.get("name", "")).lower())
    if exception:
        return Finding(ref, declared, ALLOWED, f"policy exception: {exception}")
    if not entries:
        return Finding(ref, declared, UNKNOWN, "the SBOM carries no licence for it")
    allowed, denied = set(policy.allowed), set(policy.denied)
    worst = max((_spdx(e, allowed, denied) if e else UNKNOWN for e in entries), key=_RANK.get)
    return Finding(ref, declared, worst, "" if worst != UNKNOWN else "neither allowed nor denied by the policy")


def sbom_licences(sbom_path: str | Path, policy) -> list[Finding]:
    """Every component of a CycloneDX JSON SBOM (the root component aside), judged by the policy."""
    doc = json.loads(Path(sbom_path).read_text(encoding="utf-8"))
    return [component_status(c, policy) for c in doc.get("components", [])]
