"""The licence gate over the real CycloneDX SBOM: a planted denied licence fails in release mode and
warns in development mode; expressions, classifiers, missing data and exceptions are judged right."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from z4_assets.buildlane.licences import check_licences
from z4_assets.buildlane.result import FAIL, PASS, WARN
from z4_assets.core.licences import ALLOWED, DENIED, UNKNOWN, component_status
from z4_assets.core.policy import load_policy

ROOT = Path(__file__).resolve().parents[1]
POLICY = load_policy(None, "").licences


@pytest.fixture(scope="module")
def real_sbom(tmp_path_factory) -> Path:
    from z4_assets.core.sbom import generate_sbom

    path = tmp_path_factory.mktemp("sbom") / "sbom.cdx.json"
    generate_sbom(path)
    return path


def _with(sbom: Path, out: Path, *components: dict) -> Path:
    doc = json.loads(sbom.read_text())
    doc["components"] += list(components)
    out.write_text(json.dumps(doc))
    return out


def _clean(sbom: Path, out: Path, policy_file: Path) -> tuple[Path, Path]:
    """The real SBOM, with the policy clearing what this environment really has that is not allowed
    (so a verdict below is about the planted component alone)."""
    from z4_assets.core.licences import sbom_licences

    names = {f.component.split("==")[0].lower(): "cleared for this test" for f in sbom_licences(sbom, POLICY)
             if f.status != ALLOWED}
    policy_file.write_text(json.dumps({"defaults": {"licences": {"exceptions": names}}}))
    return sbom, policy_file


def test_a_planted_denied_licence_fails_in_release_and_warns_in_development(real_sbom, tmp_path):
    sbom, policy = _clean(real_sbom, tmp_path / "sbom.json", tmp_path / "policy.yaml")
    assert check_licences(sbom, "release", str(policy)).status == PASS
    planted = _with(sbom, tmp_path / "planted.json",
                    {"name": "copyleft-lib", "version": "1.0", "type": "library",
                     "licenses": [{"license": {"id": "AGPL-3.0-only"}}]})
    release = check_licences(planted, "release", str(policy))
    assert release.status == FAIL and "copyleft-lib==1.0: denied (AGPL-3.0-only)" in release.summary
    development = check_licences(planted, "development", str(policy))
    assert development.status == WARN and "a warning, not a pass" in development.summary


def test_an_unknown_licence_or_none_at_all_is_never_a_pass(real_sbom, tmp_path):
    sbom, policy = _clean(real_sbom, tmp_path / "sbom.json", tmp_path / "policy.yaml")
    for component in ({"name": "mystery", "version": "2"},
                      {"name": "odd", "version": "3", "licenses": [{"license": {"name": "Custom EULA v7"}}]}):
        planted = _with(sbom, tmp_path / "p.json", component)
        assert check_licences(planted, "release", str(policy)).status == FAIL
        assert check_licences(planted, "development", str(policy)).status == WARN


@pytest.mark.parametrize("licenses,expected", [
    ([{"expression": "MIT OR GPL-3.0-only"}], ALLOWED),              # a choice: the better
    ([{"expression": "MIT AND GPL-3.0-only"}], DENIED),              # both bind: the worse
    ([{"expression": "Apache-2.0 WITH LLVM-exception"}], ALLOWED),   # an exception only adds rights
    ([{"expression": "GPL-2.0-or-later WITH Classpath-exception-2.0"}], DENIED),
    ([{"license": {"name": "License :: OSI Approved :: MIT License"}}], ALLOWED),
    ([{"license": {"name": "License :: OSI Approved :: GNU General Public License (GPL)"}}], DENIED),
    ([{"license": {"id": "MIT"}}, {"license": {"id": "GPL-3.0-only"}}], DENIED),  # several entries: all bind
    ([{"expression": "MIT OR (((("}], UNKNOWN),                       # unparseable: unknown
    ([], UNKNOWN),
])
def test_expressions_classifiers_and_several_entries(licenses, expected):
    assert component_status({"name": "x", "version": "1", "licenses": licenses}, POLICY).status == expected


def test_a_named_exception_clears_a_package_and_says_who(tmp_path):
    policy = POLICY.model_copy(update={"exceptions": {"pykcs11": "J. Doe (legal), 2026-11-28: HSM driver, not shipped"}})
    f = component_status({"name": "PyKCS11", "version": "1.5", "licenses": [{"license": {"id": "GPL-2.0-or-later"}}]},
                         policy)
    assert f.status == ALLOWED and "J. Doe" in f.reason
    assert component_status({"name": "PyKCS11", "version": "1.5",
                             "licenses": [{"license": {"id": "GPL-2.0-or-later"}}]}, POLICY).status == DENIED


def test_ci_gate_cli_release_mode_blocks_on_a_policy_that_denies_mit(tmp_path):
    """Through `z4 ci-gate --only licences`, on this environment's own SBOM: MIT denied by an override."""
    policy = tmp_path / "deny-mit.yaml"
    policy.write_text("defaults:\n  licences:\n    denied: [MIT]\n")
    env = {**os.environ, "Z4_POLICY": str(policy)}
    proc = subprocess.run([sys.executable, "-m", "z4_assets.cli", "ci-gate", "--only", "licences", "--mode",
                           "release", "--out", str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (gate,) = report["gates"]
    assert gate["name"] == "licences" and gate["status"] == FAIL
    assert any(line.endswith(": denied (MIT)") for line in gate["details"]), gate["details"][:5]
