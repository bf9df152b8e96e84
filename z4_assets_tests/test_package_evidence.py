"""A package proves it is complete and of one lineage, to a reader holding only it and the public key
(issue 15, items 1 and 2): packages re-signed after a stage was removed, the required list shortened
or a digest changed are refused, whoever signed them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from z4_assets.core.errors import Z4Error
from z4_assets.core.packaging import _attest as attest, _evidence as evidence, _layout as layout
from z4_assets.core.packaging._signing import keygen, sign_package
from z4_assets.core.packaging._verify import verify_package
from z4_assets.core.stages import FAIRNESS, packaged_stages, required_evidence


@pytest.fixture(scope="module")
def sample_package(sample_factory_run, signing_key):
    assert sample_factory_run["result"].success
    return sample_factory_run["run_dir"] / "package", signing_key.with_name("signing.pub.pem")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _summary(pkg: Path) -> dict:
    return json.loads((pkg / attest.SUMMARY_FILE).read_text())


def _write_summary(pkg: Path, doc: dict) -> None:
    (pkg / attest.SUMMARY_FILE).write_text(json.dumps(doc))


def _resummarize(pkg: Path) -> None:
    doc = _summary(pkg)
    doc["predicate"]["gates"] = attest.gates_from_package(pkg)
    _write_summary(pkg, doc)


def _resign(pkg: Path, key: Path) -> None:
    layout.write_checksums(pkg)
    sign_package(pkg, key)


def _drop_stage(pkg: Path, stage=FAIRNESS) -> None:
    shutil.rmtree(pkg / stage.package_dir)
    _resummarize(pkg)


def test_the_signed_statement_carries_the_required_list_and_the_lineage(sample_package):
    pkg, pub = sample_package
    pred = _summary(pkg)["predicate"]
    required = pred["requiredEvidence"]
    assert required["stages"] == {k: list(v) for k, v in required_evidence().items()}
    assert set(required["stages"]) == {s.name for s in packaged_stages()}
    assert {"model/model.safetensors", evidence.SPLIT_FILE, "reports/fairness/gates.json"} <= set(required["files"])
    lineage = pred["lineage"]
    manifest = json.loads((pkg / evidence.MANIFEST_FILE).read_text())
    assert lineage["snapshot"] == manifest["hash"] and lineage["contract"] == manifest["contract_hash"]
    assert lineage["model"] == json.loads((pkg / "model/model_config.json").read_text())["state_dict_sha256"]
    assert set(lineage["stages"]) == set(required["stages"])
    assert lineage["stages"]["fairness"]["consumed"]["model"] == lineage["model"]
    report = verify_package(pkg, pub)
    detail = {c["check"]: c["detail"] for c in report.checks}
    assert report.ok and "agree" in detail["lineage"] and "all present" in detail["required"]


def test_a_stage_removed_and_re_signed_with_another_key_is_refused(sample_package, tmp_path):
    pkg, pub = sample_package
    bad = _copy(pkg, tmp_path / "pkg")
    _drop_stage(bad)
    other, _ = keygen(tmp_path / "other" / "k.pem")
    _resign(bad, other)
    report = verify_package(bad, pub)
    assert not report.ok and report.first_problem.startswith("signature:"), report.first_problem


def test_a_stage_removed_and_re_signed_with_the_factory_key_is_refused_naming_it(sample_package, tmp_path,
                                                                                 signing_key):
    pkg, pub = sample_package
    bad = _copy(pkg, tmp_path / "pkg")
    _drop_stage(bad)
    _resign(bad, signing_key)
    report = verify_package(bad, pub)
    assert not report.ok
    assert report.first_problem.startswith("required: required evidence missing: stage fairness"), report.first_problem


def test_a_shortened_required_list_is_refused_against_the_verifiers_own_stage_table(sample_package, tmp_path,
                                                                                    signing_key):
    pkg, pub = sample_package
    bad = _copy(pkg, tmp_path / "pkg")
    _drop_stage(bad)
    doc = _summary(bad)
    del doc["predicate"]["requiredEvidence"]["stages"]["fairness"]
    doc["predicate"]["requiredEvidence"]["files"].remove("reports/fairness/gates.json")
    del doc["predicate"]["lineage"]["stages"]["fairness"]
    _write_summary(bad, doc)
    _resign(bad, signing_key)
    report = verify_package(bad, pub)
    assert not report.ok
    assert "leaves out stage fairness" in report.first_problem, report.first_problem
    cli = subprocess.run([sys.executable, "-m", "z4_assets.cli", "verify", str(bad), "--key", str(pub)],
                         capture_output=True, text=True)
    assert cli.returncode == 1 and "REJECTED" in cli.stdout
    assert cli.stderr.startswith("z4: verify: required: the signed list of required evidence leaves out stage "
                                 "fairness") and cli.stderr.count("\n") == 1, cli.stderr


def test_a_gate_dropped_from_the_list_and_the_package_is_refused(sample_package, tmp_path, signing_key):
    pkg, pub = sample_package
    bad = _copy(pkg, tmp_path / "pkg")
    p = bad / FAIRNESS.package_dir / "gates.json"
    p.write_text(json.dumps([g for g in json.loads(p.read_text()) if g["name"] != "fairness_auc_diff"]))
    _resummarize(bad)
    doc = _summary(bad)
    doc["predicate"]["requiredEvidence"]["stages"]["fairness"].remove("fairness_auc_diff")
    _write_summary(bad, doc)
    _resign(bad, signing_key)
    report = verify_package(bad, pub)
    assert not report.ok and "leaves out gate fairness/fairness_auc_diff" in report.first_problem


def test_a_package_with_no_model_is_refused(sample_package, tmp_path, signing_key):
    pkg, pub = sample_package
    bad = _copy(pkg, tmp_path / "pkg")
    shutil.rmtree(bad / "model")
    _resummarize(bad)
    doc = _summary(bad)
    doc["subject"] = []
    _write_summary(bad, doc)
    prov = json.loads((bad / attest.PROVENANCE_FILE).read_text())
    prov["subject"] = []
    (bad / attest.PROVENANCE_FILE).write_text(json.dumps(prov))
    _resign(bad, signing_key)
    report = verify_package(bad, pub)
    assert not report.ok and "model/model_config.json" in report.first_problem, report.first_problem
    assert "Traceback" not in report.first_problem


def _report_names_other_model(pkg: Path) -> str:
    p = pkg / "reports/security/adv_eval.json"
    p.write_text(p.read_text().replace(_summary(pkg)["predicate"]["lineage"]["model"], "ab" * 32))
    return "reports/security/adv_eval.json records model"


def _fairness_of_other_snapshot(pkg: Path) -> str:
    p = pkg / "reports/fairness/fairness.json"
    doc = json.loads(p.read_text())
    doc["dataset_hash"] = "cd" * 32
    p.write_text(json.dumps(doc))
    return "reports/fairness/fairness.json records snapshot"


def _other_split(pkg: Path) -> str:
    (pkg / evidence.SPLIT_FILE).write_bytes(b"PAR1 another split")
    return "lineage/split.parquet records split"


def _manifest_of_other_data(pkg: Path) -> str:
    p = pkg / evidence.MANIFEST_FILE
    doc = json.loads(p.read_text())
    doc["hash"] = "ef" * 32
    p.write_text(json.dumps(doc))
    return "dataset_manifest.json records snapshot"


def _other_weights(pkg: Path) -> str:
    w = pkg / "model/model.safetensors"
    data = bytearray(w.read_bytes())
    data[-20] ^= 0x01
    w.write_bytes(bytes(data))
    for rel in (attest.PROVENANCE_FILE, attest.SUMMARY_FILE):  # the statements' subjects follow the new bytes
        doc = json.loads((pkg / rel).read_text())
        doc["subject"] = attest.model_subjects(pkg)
        (pkg / rel).write_text(json.dumps(doc))
    return "model.safetensors records weights_sha256"


def _stage_of_another_lineage(pkg: Path) -> str:
    doc = _summary(pkg)
    doc["predicate"]["lineage"]["stages"]["security"]["consumed"]["model"] = "12" * 32
    _write_summary(pkg, doc)
    return "stage security (consumed) records model"


LINEAGE_TAMPERS = {"report names another model": _report_names_other_model,
                   "fairness of another snapshot": _fairness_of_other_snapshot,
                   "another split": _other_split, "manifest of other data": _manifest_of_other_data,
                   "other weights": _other_weights, "a stage of another lineage": _stage_of_another_lineage}


@pytest.mark.parametrize("tamper", list(LINEAGE_TAMPERS))
def test_every_digest_is_checked_against_the_files_even_when_re_signed(sample_package, tmp_path, signing_key, tamper):
    pkg, pub = sample_package
    bad = _copy(pkg, tmp_path / "pkg")
    expected = LINEAGE_TAMPERS[tamper](bad)
    _resign(bad, signing_key)
    report = verify_package(bad, pub)
    assert not report.ok and report.first_problem.startswith("lineage: "), report.first_problem
    assert expected in report.first_problem, report.first_problem


def test_missing_evidence_names_stages_gates_and_files():
    required = {"stages": {"training": ["performance_auc", "performance_ks"], "fairness": ["x"]},
                "files": ["model/weights.pt", "extra.json"]}
    gates = [{"stage": "training", "gate": "performance_auc"}]
    assert evidence.missing_evidence(required, gates, {"model/weights.pt"}) == [
        "stage fairness", "gate training/performance_ks", "file extra.json"]


def test_the_policy_adds_required_files_and_cannot_drop_them(tmp_path):
    from z4_assets.core.policy import load_policy

    add = tmp_path / "add.yaml"
    add.write_text("defaults:\n  evidence:\n    files: [reports/security/suspicious_rows.csv]\n"
                   "datasets:\n  d1:\n    evidence:\n      files: [reports/security/suspicious_rows.csv, x/y.json]\n"
                   "  d2:\n    evidence:\n      files: []\n")
    assert load_policy(add, "d1").evidence.files == ["reports/security/suspicious_rows.csv", "x/y.json"]
    assert "x/y.json" in evidence.required_evidence(load_policy(add, "d1").evidence.files)["files"]
    with pytest.raises(Z4Error, match=r"datasets.d2.evidence.files drops required evidence "
                                      r"'reports/security/suspicious_rows.csv': the policy can only add"):
        load_policy(add, "d2")
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults:\n  evidence:\n    files: [../outside.json]\n")
    with pytest.raises(Z4Error, match="policy key evidence.files.*not a normalized path"):
        load_policy(bad, "d1")
    waive = tmp_path / "waive.yaml"
    waive.write_text("defaults:\n  evidence:\n    waive: [fairness]\n")
    with pytest.raises(Z4Error, match="unknown policy key defaults.evidence.waive"):
        load_policy(waive, "d1")


def test_a_json_key_written_twice_is_refused_even_when_re_signed(sample_package, tmp_path, signing_key):
    """Python keeps the last of two equal keys, other readers the first: one canonical reading only."""
    pkg, pub = sample_package
    bad = _copy(pkg, tmp_path / "pkg")
    text = json.dumps(_summary(bad))
    assert '"verificationResult": "PASSED"' in text
    (bad / attest.SUMMARY_FILE).write_text(text.replace('"verificationResult": "PASSED"',
                                                        '"verificationResult": "FAILED", "verificationResult": "PASSED"'))
    _resign(bad, signing_key)
    report = verify_package(bad, pub)
    assert not report.ok and "has the key 'verificationResult' twice" in report.first_problem, report.first_problem
