"""Signed package, offline verification, promotion, verified loading, and every tamper caught."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from z4_assets.assets import signed_package
from z4_assets.core.errors import Z4Error
from z4_assets.core.packaging import _attest as attest, _layout as layout
from z4_assets.core.packaging._signing import keygen, sign_package
from z4_assets.core.packaging._verify import CHECKS, verify_package
from z4_assets.core.promotion._registry import load_model_by_alias
from z4_assets.outcome_store import OutcomeStore
from z4_assets.resources import FactoryStorage, MlflowTracking
from z4_assets_tests.conftest import check_verdicts, materialized, run_factory, ALL_ASSETS


@pytest.fixture(scope="module")
def passed_run(sample_factory_run, signing_key):
    """The session's shared factory run on the sample: read-only here (a tamper works on a copy)."""
    result, run_dir = sample_factory_run["result"], sample_factory_run["run_dir"]
    assert result.success, {k: v for k, v in check_verdicts(result).items() if not v}
    return {"result": result, "run_dir": run_dir, "pkg": run_dir / "package",
            "tar": run_dir / "package.tar.gz", "pub": signing_key.with_name("signing.pub.pem"),
            "resources": sample_factory_run["resources"], "partition": sample_factory_run["ref"].label}


def _package_of_another_run(passed_run, tmp_path) -> Path:
    """signed_package alone, materialized again for the same snapshot in a new run: the same evidence
    (read from a copy of the outcome store), another run id and time, the same key. Everything it
    writes (outcome, run folder, MLflow run) goes to TMP_PATH, so the shared run stays as it was."""
    res = passed_run["resources"]
    root = tmp_path / "factory_b"
    shutil.copytree(Path(res["storage"].root) / "outcomes", root / "outcomes")
    resources = {**res, "storage": FactoryStorage(root=str(root), cache_root=res["storage"].cache_root),
                 "outcomes": OutcomeStore(root=str(root)),
                 "mlflow": MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow_b.db'}",
                                          experiment_name="z4-tests")}
    run_b = run_factory(resources, partition=passed_run["partition"],
                        assets=[signed_package])
    assert run_b.success and materialized(run_b) == {"signed_package"}
    assert run_b.run_id != passed_run["result"].run_id
    return root / "runs" / run_b.run_id / "package"


def test_package_layout_and_it_verifies(passed_run):
    pkg = passed_run["pkg"]
    for rel in ("model/model.safetensors", "model/feature_spec.json", "reports/hygiene/hygiene_report.json",
                "sbom/sbom.json", "checksums.json", "metadata.json", attest.PROVENANCE_FILE,
                attest.SUMMARY_FILE, layout.SIGNATURE_FILE):
        assert (pkg / rel).is_file(), rel
    parquet = [p.relative_to(pkg).as_posix() for p in pkg.rglob("*.parquet")]
    assert parquet == ["lineage/split.parquet"], "intermediates stay out of the package; the split is lineage"
    sbom = json.loads((pkg / "sbom/sbom.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and len(sbom["components"]) > 100
    prov = json.loads((pkg / attest.PROVENANCE_FILE).read_text())
    assert prov["_type"] == "https://in-toto.io/Statement/v1"
    assert prov["predicateType"] == "https://slsa.dev/provenance/v1"
    build = prov["predicate"]["buildDefinition"]
    assert build["internalParameters"]["seeds"]["train"] == 7
    assert build["internalParameters"]["hyperparameters"]["epochs"] == 3
    uris = [d["uri"] for d in build["resolvedDependencies"]]
    assert uris[0].startswith("z3://taiwan_credit_default/") and uris[1].startswith("git+")
    assert prov["predicate"]["runDetails"]["metadata"]["invocationId"] == passed_run["result"].run_id
    summary = json.loads((pkg / attest.SUMMARY_FILE).read_text())["predicate"]
    assert {g["gate"] for g in summary["gates"]} >= {"contract", "drift", "performance_auc"}
    for report in (verify_package(pkg, passed_run["pub"]), verify_package(passed_run["tar"], passed_run["pub"])):
        assert report.ok, report.first_problem
        assert [c["check"] for c in report.checks] == [*(name for name, _ in CHECKS), "z3_snapshot"]
        assert [c["check"] for c in report.checks] == ["no_pickle", "signature", "checksums", "statements", "lineage",
                                                       "sbom", "image", "required", "gates", "z3_snapshot"]


def _copy(passed_run, tmp_path) -> Path:
    dst = tmp_path / "pkg"
    shutil.copytree(passed_run["pkg"], dst)
    return dst


def _flip_weight(pkg, **_):
    w = pkg / "model/model.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0x01
    w.write_bytes(bytes(data))


def _edit_report(pkg, **_):
    p = pkg / "reports/hygiene/hygiene_report.json"
    p.write_text(p.read_text().replace('"passed": false', '"passed": true').replace("0.001", "0.000"))


def _add_file(pkg, **_):
    (pkg / "model/extra_layer.pt").write_bytes(b"\x00" * 64)


def _remove_file(pkg, **_):
    (pkg / "reports/hygiene/hygiene_summary.md").unlink()


def _other_key(pkg, tmp_path, **_):
    other, _ = keygen(tmp_path / "other" / "k.pem")
    sign_package(pkg, other)


def _flip_verdict(pkg, **_):
    p = pkg / attest.SUMMARY_FILE
    doc = json.loads(p.read_text())
    doc["predicate"]["gates"][0]["verdict"] = "PASS" if doc["predicate"]["gates"][0]["verdict"] == "FAIL" else "FAIL"
    p.write_text(json.dumps(doc))


def _signature_of_run_b(pkg, run_b, **_):
    shutil.copyfile(run_b / layout.SIGNATURE_FILE, pkg / layout.SIGNATURE_FILE)


TAMPERS = {"weights_byte_flipped": _flip_weight, "report_edited": _edit_report, "file_added": _add_file,
           "file_removed": _remove_file, "signed_by_another_key": _other_key,
           "statement_verdict_changed": _flip_verdict, "signature_of_another_run": _signature_of_run_b}


def test_every_tamper_is_detected_and_blocks_loading(passed_run, tmp_path):
    pkg_b = _package_of_another_run(passed_run, tmp_path)  # same evidence: only run ids and times differ
    assert verify_package(pkg_b, passed_run["pub"]).ok

    detected, seconds = {}, []
    for name, tamper in TAMPERS.items():
        pkg = _copy(passed_run, tmp_path / name)
        tamper(pkg, tmp_path=tmp_path / name, run_b=pkg_b)
        start = time.perf_counter()
        report = verify_package(pkg, passed_run["pub"])
        seconds.append(time.perf_counter() - start)
        detected[name] = not report.ok
        assert report.first_problem, name
    print(f"\ntamper detection {sum(detected.values())}/{len(detected)}; "
          f"verify median {sorted(seconds)[len(seconds) // 2]:.3f} s")
    assert detected == {name: True for name in TAMPERS}


def resummarize(pkg: Path) -> None:
    """Rewrite the verification summary's gates from the package's gates.json files (as the builder does)."""
    doc = json.loads((pkg / attest.SUMMARY_FILE).read_text())
    gates = attest.gates_from_package(pkg)
    doc["predicate"]["gates"] = gates
    doc["predicate"]["verificationResult"] = "FAILED" if any(g["blocks"] for g in gates) else "PASSED"
    (pkg / attest.SUMMARY_FILE).write_text(json.dumps(doc))


def resign(pkg: Path, key: Path) -> None:
    layout.write_checksums(pkg)
    sign_package(pkg, key)


def _edit_gate(pkg: Path, stage_dir: str, name: str, **changes) -> None:
    p = pkg / stage_dir / "gates.json"
    gates = json.loads(p.read_text())
    next(g for g in gates if g["name"] == name).update(changes)
    p.write_text(json.dumps(gates))


def test_a_failed_gate_in_the_statement_is_rejected_even_with_a_valid_signature(passed_run, tmp_path, signing_key):
    pkg = _copy(passed_run, tmp_path / "a")
    doc = json.loads((pkg / attest.SUMMARY_FILE).read_text())
    doc["predicate"]["gates"][3]["verdict"] = "FAIL"  # the summary alone: it disagrees with gates.json
    (pkg / attest.SUMMARY_FILE).write_text(json.dumps(doc))
    resign(pkg, signing_key)
    report = verify_package(pkg, passed_run["pub"])
    assert not report.ok and report.first_problem.startswith("required: the summary's gates differ"), report.first_problem

    pkg = _copy(passed_run, tmp_path / "b")
    _edit_gate(pkg, "reports/snapshot", "purpose", passed=False, verdict="FAIL")
    resummarize(pkg)
    resign(pkg, signing_key)  # signed by the right key, yet a gate says FAIL
    report = verify_package(pkg, passed_run["pub"])
    assert not report.ok and report.first_problem.startswith("gates: gate snapshot/purpose is FAIL"), report.first_problem


@pytest.mark.parametrize("blocks", [False, True])
def test_insufficient_evidence_verifies_only_when_the_policy_let_it_through(passed_run, tmp_path, signing_key, blocks):
    pkg = _copy(passed_run, tmp_path)
    summary = json.loads((pkg / attest.SUMMARY_FILE).read_text())["predicate"]["gates"]
    before = sum(g["verdict"] == "INSUFFICIENT_EVIDENCE" for g in summary)
    assert before == 3  # a dataset's first snapshot: drift, drift_missingness, drift_new_features (no baseline)
    _edit_gate(pkg, "reports/security", "membership_auc", verdict="INSUFFICIENT_EVIDENCE", passed=not blocks,
               value=None, sufficient=False)
    resummarize(pkg)
    resign(pkg, signing_key)
    report = verify_package(pkg, passed_run["pub"])
    if blocks:
        assert not report.ok and "membership_auc is INSUFFICIENT_EVIDENCE (blocks)" in report.first_problem
    else:
        assert report.ok, report.first_problem
        assert f"{before + 1} with insufficient evidence" in next(c["detail"] for c in report.checks if c["check"] == "gates")


def test_promotion_registers_a_candidate_that_loads_only_after_verification(passed_run):
    res = passed_run["resources"]
    assert materialized(passed_run["result"]) == ALL_ASSETS
    client = MlflowClient(res["mlflow"].tracking_uri)
    version = client.get_model_version_by_alias("z4-taiwan_credit_default", "candidate")
    assert version.tags["decision"] == "PASS"
    assert version.tags["dagster_run_id"] == passed_run["result"].run_id
    assert version.tags["package_sha256"] == __import__("hashlib").sha256(passed_run["tar"].read_bytes()).hexdigest()
    run = client.get_run(version.run_id)
    assert run.data.tags["policy_decision"] == "PASS"
    top = {a.path for a in client.list_artifacts(version.run_id)}
    assert {"model", "reports", "sbom", "provenance", "signatures", "checksums.json"} <= top

    model, spec, config = load_model_by_alias("z4-taiwan_credit_default", passed_run["pub"],
                                              tracking_uri=res["mlflow"].tracking_uri)
    assert config["state_dict_sha256"] == json.loads((passed_run["pkg"] / "metadata.json").read_text())["state_dict_sha256"]

    # tamper with the registered copy: loading must refuse (the shared run's copy is put back after)
    stored = Path(client.get_run(version.run_id).info.artifact_uri.replace("file://", "")) / "package" / "package.tar.gz"
    original = stored.read_bytes()
    data = bytearray(original)
    data[-100] ^= 0xFF
    try:
        stored.write_bytes(bytes(data))
        with pytest.raises(Z4Error, match="refusing to load|digest differs"):
            load_model_by_alias("z4-taiwan_credit_default", passed_run["pub"],
                                tracking_uri=res["mlflow"].tracking_uri)
    finally:
        stored.write_bytes(original)


def test_a_blocked_run_registers_nothing_and_says_fail(sample_df, register, factory_resources):
    register(sample_df.drop(columns=["AGE"]).iloc[:2000], check_contract=False)
    result = run_factory(factory_resources)
    assert "promotion" not in materialized(result)
    client = MlflowClient(factory_resources["mlflow"].tracking_uri)
    assert client.search_registered_models() == []
    run = client.search_runs([client.get_experiment_by_name("z4-tests").experiment_id])[0]
    assert run.data.tags["policy_decision"] == "FAIL" and "contract" in run.data.tags["policy_reasons"]


def test_private_key_never_leaves_its_file(passed_run, signing_key):
    body = [line for line in signing_key.read_text().splitlines() if not line.startswith("-----")]
    needles = [line.encode() for line in body if len(line) >= 20]
    assert needles
    res = passed_run["resources"]
    roots = [Path(res["storage"].root), Path(res["mlflow"].tracking_uri.removeprefix("sqlite:///")).parent]
    scanned = 0
    for root in roots:
        for f in root.rglob("*"):
            if f.is_file() and f != signing_key:
                data = f.read_bytes()
                scanned += 1
                assert not any(n in data for n in needles), f"key material in {f}"
    instance_events = passed_run["result"].all_events
    assert not any(n.decode() in str(e) for e in instance_events for n in needles)
    assert scanned > 20


def test_keygen_is_0600_and_never_overwrites(tmp_path):
    priv, pub = keygen(tmp_path / "k" / "signing.pem")
    assert priv.stat().st_mode & 0o777 == 0o600 and pub.is_file()
    with pytest.raises(Z4Error, match="refusing to overwrite"):
        keygen(priv)


def test_keyless_signing_fails_fast_and_clearly(tmp_path):
    pkg = tmp_path / "p"
    (pkg / "model").mkdir(parents=True)
    (pkg / "model" / "w").write_bytes(b"w")
    start = time.perf_counter()
    with pytest.raises(Z4Error, match="keyless Sigstore signing failed"):
        sign_package(pkg, keyless=True)
    assert time.perf_counter() - start < 30


def test_z4_verify_cli_exit_codes_and_json(passed_run, tmp_path):
    cmd = [sys.executable, "-m", "z4_assets.cli", "verify", str(passed_run["tar"]), "--key", str(passed_run["pub"])]
    ok = subprocess.run(cmd + ["--json"], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True
    pkg = _copy(passed_run, tmp_path)
    _flip_weight(pkg)
    bad = subprocess.run([*cmd[:4], str(pkg), "--key", str(passed_run["pub"])], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "REJECTED" in bad.stdout and bad.stderr.startswith("z4: verify: signature:")
    assert "model.safetensors" in bad.stderr
