"""Licences: no dependency ships under a licence the policy denies, or under one nobody reviewed.

Reads the CycloneDX SBOM the `sbom` gate wrote (or builds it), and judges every component with
core/licences.py against the policy's `licences` section. A denied licence, or an unknown one (no
licence data, or a licence the policy neither allows nor denies), fails in release mode and warns,
loudly, in development mode, as pip-audit's "not audited" does: never a pass. A reviewed package
is cleared only by a named exception in the policy (docs/runbooks/licences.md).
"""

from __future__ import annotations

from pathlib import Path

from z4_assets.buildlane.result import FAIL, PASS, WARN, LaneResult


def check_licences(sbom_path: Path, mode: str, policy_path: str | None = None) -> LaneResult:
    from z4_assets.core.licences import DENIED, UNKNOWN, sbom_licences
    from z4_assets.core.policy import load_policy

    policy = load_policy(policy_path or None, "").licences
    findings = sbom_licences(sbom_path, policy)
    denied = [f for f in findings if f.status == DENIED]
    unknown = [f for f in findings if f.status == UNKNOWN]
    cleared = [f for f in findings if f.reason.startswith("policy exception")]
    details = [f.line() for f in denied + unknown + cleared]
    if denied or unknown:
        status = FAIL if mode == "release" else WARN
        effect = "blocks in release mode" if status == FAIL else "development mode: a warning, not a pass"
        first = (denied or unknown)[0].line()
        return LaneResult("licences", status, f"{len(denied)} denied, {len(unknown)} unknown licence(s) "
                                              f"({effect}): {first}", details)
    return LaneResult("licences", PASS, f"{len(findings)} components, every licence allowed by the policy"
                                        + (f" ({len(cleared)} by a named exception)" if cleared else ""), details)
