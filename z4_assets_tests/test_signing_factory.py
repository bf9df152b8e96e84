"""Whole factory runs signing in PKCS#11 mode under a release policy that requires a token or a
certificate (and refusing a key file), and a package signed with a CA chain verified by `z4 verify --ca`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from mlflow.tracking import MlflowClient

from z4_assets.assets import signed_package
from z4_assets.core.packaging import public_key_fingerprint, verify_package
from z4_assets.resources import PolicyStore
from z4_assets.resources.signer import PackageSigner
from z4_assets_tests.conftest import check_metadata, check_verdicts, fork_factory, materialized, run_factory
from z4_assets_tests.test_signing_modes import PINS, ROOT, cas, tokens  # noqa: F401 (fixtures)

RELEASE_POLICY = """\
defaults:
  performance: {gate_on: point}
  release:
    require_signing: [pkcs11, certificate]
"""


def _release(sample_df, register, factory_resources, tmp_path, signer: PackageSigner | None):
    """A whole factory run on the sample under the release policy (signed by SIGNER, else the fixtures' key file)."""
    policy = tmp_path / "release.yaml"
    policy.write_text(RELEASE_POLICY)
    resources = {**factory_resources, "policy": PolicyStore(path=str(policy))}
    if signer is not None:
        resources["signer"] = signer
    ref = register(sample_df)
    return resources, run_factory(resources, partition=ref.label)


def _tags(resources, run_id: str) -> dict:
    client = MlflowClient(resources["mlflow"].tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("z4-tests").experiment_id],
                                filter_string=f"tags.`dagster.run_id` = '{run_id}'")
    return run.data.tags


def test_a_release_signed_in_the_token_is_promoted_and_says_so(sample_df, register, factory_resources, tmp_path,
                                                               tokens):
    tok = tokens["z4"]
    signer = PackageSigner(mode="pkcs11", private_key_path="", pkcs11_uri=tok["uri"],
                           pkcs11_pin_file=str(tok["pin_file"]), public_key_path=str(tok["pub"]))
    resources, result = _release(sample_df, register, factory_resources, tmp_path, signer)
    assert result.success and check_verdicts(result)["package_verified"] is True
    folder = resources["storage"].folder(result.run_id)
    assert json.loads((folder.package_dir / "metadata.json").read_text())["signing_mode"] == "pkcs11"
    tags = _tags(resources, result.run_id)
    assert tags["signing_mode"] == "pkcs11"
    assert tags["signing_public_key_sha256"] == public_key_fingerprint(tok["pub"])
    assert PINS["z4"] not in json.dumps(tags)
    assert verify_package(folder.package_tarball, tok["pub"]).ok
    refused = verify_package(folder.package_tarball, tokens["other"]["pub"])
    assert not refused.ok and refused.first_problem.startswith("signature")


def test_the_release_policy_refuses_a_package_signed_with_a_key_file(sample_df, register, factory_resources, tmp_path):
    resources, result = _release(sample_df, register, factory_resources, tmp_path, None)  # the fixtures' PEM key
    assert not result.success
    assert check_verdicts(result)["package_verified"] is False
    meta = check_metadata(result, "package_verified")
    assert "signing mode: signed in ec_key mode; the release policy requires pkcs11 or certificate" in meta["verdict"]
    assert "promotion" in materialized(result) and "cleanup_report" not in materialized(result)  # blocked there


def test_a_package_signed_with_the_bank_ca_chain_verifies_with_z4_verify_ca(sample_factory_run, tmp_path, cas):
    """signed_package alone on the shared sample run's outcomes, in certificate mode; then the CLI."""
    bank = cas["bank"]
    resources = fork_factory(sample_factory_run, tmp_path)
    resources["signer"] = PackageSigner(mode="certificate", private_key_path=str(bank.leaf_key),
                                        certificate=str(bank.leaf), certificate_chain=[str(bank.intermediate)],
                                        ca_roots=[str(bank.root)])
    result = run_factory(resources, assets=[signed_package])
    assert result.success
    tags = _tags(resources, result.run_id)
    chain = json.loads(tags["signing_certificate_chain"])
    assert tags["signing_mode"] == "certificate" and chain[0]["subject"] == "CN=Bank model factory,O=Z4 test bank"
    tarball = resources["storage"].folder(result.run_id).package_tarball
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "z4_assets.cli", "verify", str(tarball), "--ca", str(bank.root)],
                        env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "VERIFIED" in ok.stdout, ok.stdout + ok.stderr
    other = subprocess.run([sys.executable, "-m", "z4_assets.cli", "verify", str(tarball), "--ca",
                            str(cas["other"].root)], env=env, capture_output=True, text=True)
    assert other.returncode == 1 and "REJECTED" in other.stdout and "signature does not verify" in other.stderr
