"""Promotion in real factory runs: a tampered tarball fails `package_verified`, a package missing a
stage fails `release_gates_pass`; downstream is skipped, no version is registered, the MLflow run says
FAIL. And the subset materializations of issue 15 ("Promotion bypass") move nothing to @candidate.

Each case runs on a fork of the session's sample run (`fork_factory`): its own factory root and MLflow
store, the sample's outcomes copied, the one outcome under attack edited there. Where a case needs the
package's MLflow run, the test creates one in the fork's store and logs the package there, standing in
for signed_package's run (the real one lives in the shared store, which these tests never write to)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from z4_assets.assets import cleanup_report, promotion, signed_package
from z4_assets.core.files import sha256_file
from z4_assets.core.packaging import _attest as attest, _layout as layout
from z4_assets.core.packaging._signing import sign_package
from z4_assets.core.run_folder import FactoryRoot
from z4_assets.core.stages import FAIRNESS
from z4_assets_tests.conftest import check_verdicts, fork_factory, materialized, run_factory


@pytest.fixture(scope="module")
def sample(sample_factory_run):
    assert sample_factory_run["result"].success
    return sample_factory_run


def _outcome_path(res: dict, asset: str, partition: str) -> Path:
    return FactoryRoot(Path(res["storage"].root)).outcome(asset, partition)


def _edit_outcome(res: dict, asset: str, partition: str, edit) -> None:
    p = _outcome_path(res, asset, partition)
    doc = json.loads(p.read_text())
    edit(doc)
    p.write_text(json.dumps(doc))


def _publish(res: dict, partition: str, pkg: Path, tarball: Path, keep_digest: bool = False) -> str:
    """Point the fork's signed_package (and run_record) outcome at PKG/TARBALL, logged to a new MLflow run
    of the fork's store. KEEP_DIGEST: leave the outcome's package digest as the factory recorded it."""
    client = MlflowClient(res["mlflow"].tracking_uri)
    exp = client.get_experiment_by_name("z4-tests") or client.get_experiment(client.create_experiment("z4-tests"))
    run = client.create_run(exp.experiment_id)
    client.log_artifact(run.info.run_id, str(tarball), "package")
    client.set_terminated(run.info.run_id)
    digest = sha256_file(tarball)

    def package(doc):
        doc["files"].update(package=str(pkg), tarball=str(tarball))
        doc["facts"]["mlflow_run_id"] = run.info.run_id
        if not keep_digest:
            doc["produced"]["package"] = digest

    _edit_outcome(res, "signed_package", partition, package)
    if not keep_digest:
        _edit_outcome(res, "run_record", partition, lambda doc: doc["consumed"].update(package=digest))
    return digest


def _promote(res: dict, partition: str):
    return run_factory(res, partition=partition, assets=[promotion, cleanup_report])


def _description(result, name: str) -> str:
    return next(e.description for e in result.get_asset_check_evaluations() if e.check_name == name)


def _assert_blocked(res: dict, result, failed_gate: str) -> str:
    verdicts = check_verdicts(result)
    assert verdicts[failed_gate] is False, verdicts
    assert "promotion" in materialized(result) and "cleanup_report" not in materialized(result)
    client = MlflowClient(res["mlflow"].tracking_uri)
    assert client.search_registered_models() == [], "no version may be registered"
    runs = client.search_runs([client.get_experiment_by_name("z4-tests").experiment_id],
                              "tags.policy_decision = 'FAIL'")
    assert runs, "the promotion's MLflow run is tagged FAIL"
    return _description(result, failed_gate)


def test_a_tampered_tarball_fails_package_verified_in_a_real_run(sample, tmp_path):
    res, partition = fork_factory(sample, tmp_path), sample["ref"].label
    pkg = tmp_path / "pkg"
    shutil.copytree(sample["run_dir"] / "package", pkg)
    tarball = layout.make_tarball(pkg, tmp_path / "package.tar.gz")
    data = bytearray(tarball.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tarball.write_bytes(bytes(data))
    _publish(res, partition, pkg, tarball, keep_digest=True)
    why = _assert_blocked(res, _promote(res, partition), "package_verified")
    assert "integrity problems (package: " in why or "integrity problems (signature: " in why, why


def test_a_package_missing_a_stage_fails_release_gates_pass_in_a_real_run(sample, tmp_path, signing_key):
    res, partition = fork_factory(sample, tmp_path), sample["ref"].label
    pkg = tmp_path / "pkg"
    shutil.copytree(sample["run_dir"] / "package", pkg)
    shutil.rmtree(pkg / FAIRNESS.package_dir)
    doc = json.loads((pkg / attest.SUMMARY_FILE).read_text())
    doc["predicate"]["gates"] = attest.gates_from_package(pkg)
    (pkg / attest.SUMMARY_FILE).write_text(json.dumps(doc))
    layout.write_checksums(pkg)
    sign_package(pkg, signing_key)  # the factory's own key: only completeness can catch it
    tarball = layout.make_tarball(pkg, tmp_path / "package.tar.gz")
    _publish(res, partition, pkg, tarball)
    result = _promote(res, partition)
    verdicts = check_verdicts(result)
    assert verdicts["package_verified"] is True, _description(result, "package_verified")
    why = _assert_blocked(res, result, "release_gates_pass")
    assert "required evidence missing: stage fairness" in why, why


def test_promotion_alone_never_registers_a_version_without_its_package_artifact(sample, tmp_path):
    """The fork's MLflow store has no run holding the package: @candidate must not move."""
    res, partition = fork_factory(sample, tmp_path), sample["ref"].label
    why = _assert_blocked(res, _promote(res, partition), "package_verified")
    assert "holds no package artifact" in why, why


def _failure_lines(result) -> list[str]:
    return [e.step_failure_data.error.message for e in result.all_events
            if e.event_type_value == "STEP_FAILURE" and e.step_failure_data and e.step_failure_data.error]


def _fail_first_gate(doc):
    doc["gates"][0].update(passed=False)


@pytest.mark.parametrize("asset,edit,expected", [
    ("fairness_report", _fail_first_gate, "fairness_report did not pass"),
    ("hygiene_report", _fail_first_gate, "hygiene_report did not pass"),
    ("trained_model", None, "trained_model has not been materialized"),
])
def test_a_subset_materialization_builds_no_package(sample, tmp_path, asset, edit, expected):
    """signed_package alone over a failed fairness report, a failed hygiene report, or no model."""
    res, partition = fork_factory(sample, tmp_path), sample["ref"].label
    if edit:
        _edit_outcome(res, asset, partition, edit)
    else:
        _outcome_path(res, asset, partition).unlink()
    result = run_factory(res, partition=partition, assets=[signed_package, promotion])
    assert not result.success and not materialized(result) & {"signed_package", "promotion"}
    lines = _failure_lines(result)
    assert any(expected in line for line in lines), lines
    assert all("Traceback" not in line for line in lines)
    assert not list((Path(res["storage"].root) / "runs").glob("*/package.tar.gz"))
    assert MlflowClient(res["mlflow"].tracking_uri).search_registered_models() == []


def test_the_policy_adds_a_required_file_and_signed_package_refuses_a_package_without_it(sample, tmp_path):
    from z4_assets.resources import PolicyStore

    partition = sample["ref"].label
    for name, required, builds in (("present", "reports/security/suspicious_rows.csv", True),
                                   ("absent", "reports/security/attestation.json", False)):
        res = fork_factory(sample, tmp_path / name)
        policy = tmp_path / f"{name}.yaml"
        policy.write_text(f"defaults:\n  evidence:\n    files: [{required}]\n")
        res = {**res, "policy": PolicyStore(path=str(policy))}
        result = run_factory(res, partition=partition, assets=[signed_package])
        runs = Path(res["storage"].root) / "runs"
        assert result.success is builds, _failure_lines(result)
        if builds:
            pkg = next(runs.glob("*/package"))
            signed = json.loads((pkg / attest.SUMMARY_FILE).read_text())["predicate"]["requiredEvidence"]
            assert required in signed["files"]
        else:
            lines = _failure_lines(result)
            assert any(f"without its required evidence: file {required}" in line for line in lines), lines
            assert not list(runs.glob("*/package*")), "nothing half-built is left under a package name"
