"""Z3 snapshots are authenticated: every tamper with a registered snapshot (issue 15, item 4) is refused
by the factory in one line, with nothing downstream materialized."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from z4_assets.assets import FACTORY_ASSETS
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file
from z4_assets.core.z3 import MANIFEST, add_snapshot
from z4_assets.core.z3_signature import SIGNATURE_FILE, verify_manifest
from z4_assets.resources import PolicyStore, Z3Store
from z4_assets_tests.conftest import (DATASET, SAMPLE_CONTRACT, SAMPLE_DATASET_CONFIG, check_verdicts,
                                      materialized, run_factory)

BY_NAME = {a.key.to_user_string(): a for a in FACTORY_ASSETS}
SNAPSHOT_ONLY = [BY_NAME["z3_snapshot"]]


@pytest.fixture(scope="module")
def z3_keys(tmp_path_factory):
    from z4_assets.core.packaging import keygen

    folder = tmp_path_factory.mktemp("z3keys")
    priv, pub = keygen(folder / "z3.pem")
    other, other_pub = keygen(folder / "other.pem")
    return {"priv": priv, "pub": pub, "other": other, "other_pub": other_pub}


@pytest.fixture
def signed(tmp_path, z3_root, sample_df, z3_keys, factory_resources):
    """A signed snapshot of 3,000 sample rows; resources that check it with the Z3 public key."""
    data = tmp_path / "data.parquet"
    sample_df.iloc[:3000].to_parquet(data, index=False)
    ref, _ = add_snapshot(z3_root, DATASET, SAMPLE_CONTRACT, data, dataset_config=SAMPLE_DATASET_CONFIG,
                          signing_key=z3_keys["priv"])
    resources = {**factory_resources, "z3": Z3Store(root=str(z3_root), public_key=str(z3_keys["pub"]))}
    return ref, resources


def failure_line(result: dg.ExecuteInJobResult) -> str:
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.error.cause is None  # a dg.Failure: no traceback
    line = failure.step_failure_data.user_failure_data.description
    assert "\n" not in line and "Traceback" not in line, line
    return line


def unlock(folder: Path) -> None:
    for f in folder.iterdir():
        os.chmod(f, 0o644)


def rewrite_manifest(folder: Path, **changes) -> None:
    """What an attacker with write access to Z3 does: edit the manifest (recomputed hashes)."""
    m = json.loads((folder / MANIFEST).read_text())
    m.update(changes)
    (folder / MANIFEST).write_text(json.dumps(m, indent=2))


def test_a_signed_snapshot_passes_its_signature_gate_and_the_manifest_travels_as_evidence(signed):
    ref, resources = signed
    result = run_factory(resources, ref.label, assets=SNAPSHOT_ONLY)
    assert result.success and check_verdicts(result)["snapshot_signature"] is True
    outcome = result.asset_value("z3_snapshot")
    manifest, sig = Path(outcome.files["manifest"]), Path(outcome.files["manifest_signature"])
    assert manifest.read_bytes() == (Path(ref.path) / MANIFEST).read_bytes()  # byte for byte: it still verifies
    statement = verify_manifest(manifest.read_bytes(), sig.read_bytes(), resources["z3"].public_key,
                                ref.dataset_id, ref.snapshot_id)
    assert statement["hash"] == ref.manifest["hash"] and statement["dataset_config_hash"]


def _edit_data_and_rehash(folder: Path, ref) -> str:
    """Edit data.parquet, recompute its hash, and move the snapshot to the id its new hash implies."""
    import pandas as pd

    df = pd.read_parquet(folder / "data.parquet")
    df.loc[df.index[:50], "default.payment.next.month"] = 0
    df.to_parquet(folder / "data.parquet", index=False)
    new_hash = sha256_file(folder / "data.parquet")
    new_id = ref.snapshot_id.rpartition("-")[0] + "-" + new_hash[:12]
    rewrite_manifest(folder, hash=new_hash, snapshot_id=new_id)
    os.rename(folder, folder.parent / new_id)
    return new_id


def _edit_contract_add_purpose(folder: Path, ref) -> str:
    doc = yaml.safe_load((folder / "contract.yaml").read_text())
    doc["purposes"] = [*doc.get("purposes", []), "marketing"]
    (folder / "contract.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    rewrite_manifest(folder, contract_hash=sha256_file(folder / "contract.yaml"))
    return ref.snapshot_id


def _edit_dataset_config(folder: Path, ref) -> str:
    with open(folder / "dataset.yaml", "a") as f:
        f.write("\n# edited after registration\n")
    rewrite_manifest(folder, dataset_config_hash=sha256_file(folder / "dataset.yaml"))
    return ref.snapshot_id


def _strip_signature(folder: Path, ref) -> str:
    (folder / SIGNATURE_FILE).unlink()
    return ref.snapshot_id


@pytest.mark.parametrize("tamper, says", [
    (_edit_data_and_rehash, "snapshot_signature"),
    (_edit_contract_add_purpose, "snapshot_signature"),
    (_edit_dataset_config, "snapshot_signature"),
    (_strip_signature, "snapshot_signature"),
])
def test_a_tampered_snapshot_with_recomputed_hashes_is_refused_and_nothing_runs_downstream(
        signed, tamper, says):
    ref, resources = signed
    folder = Path(ref.path)
    unlock(folder)
    snapshot_id = tamper(folder, ref)
    result = run_factory(resources, f"{ref.dataset_id}@{snapshot_id}")
    assert not result.success
    assert check_verdicts(result)[says] is False
    # the recomputed hashes agree with the files: only the signature catches it
    assert check_verdicts(result)["snapshot_hash"] is True
    assert materialized(result) == {"z3_snapshot"}  # recorded with its evidence; nothing downstream ran


def test_a_snapshot_signed_with_another_key_is_refused(tmp_path, z3_root, sample_df, z3_keys, signed):
    _, resources = signed
    data = tmp_path / "other.parquet"
    sample_df.iloc[3000:5000].to_parquet(data, index=False)
    ref, _ = add_snapshot(z3_root, DATASET, SAMPLE_CONTRACT, data, signing_key=z3_keys["other"])
    result = run_factory(resources, ref.label)
    meta = check_verdicts(result)
    assert meta["snapshot_signature"] is False and materialized(result) == {"z3_snapshot"}


def test_a_wrong_hash_suffix_is_refused_in_one_line(signed):
    ref, resources = signed
    folder = Path(ref.path)
    unlock(folder)
    wrong = ref.snapshot_id.rpartition("-")[0] + "-" + "0" * 12
    rewrite_manifest(folder, snapshot_id=wrong)
    os.rename(folder, folder.parent / wrong)
    result = run_factory(resources, f"{ref.dataset_id}@{wrong}")
    assert not result.success and materialized(result) == set()
    assert "does not end with the data hash's first 12 hex digits" in failure_line(result)


def test_a_snapshot_copied_under_another_dataset_id_is_refused(signed, z3_root):
    ref, resources = signed
    target = z3_root / "other_dataset" / ref.snapshot_id
    shutil.copytree(ref.path, target)
    result = run_factory(resources, f"other_dataset@{ref.snapshot_id}")
    assert not result.success and materialized(result) == set()
    assert "manifest names dataset 'taiwan_credit_default' but sits under 'other_dataset'" in failure_line(result)


def test_a_copy_whose_manifest_was_renamed_too_fails_the_signature(signed, z3_root):
    ref, resources = signed
    target = z3_root / "other_dataset" / ref.snapshot_id
    shutil.copytree(ref.path, target)
    unlock(target)
    rewrite_manifest(target, dataset_id="other_dataset")
    result = run_factory(resources, f"other_dataset@{ref.snapshot_id}")
    assert check_verdicts(result)["snapshot_signature"] is False and materialized(result) == {"z3_snapshot"}


def test_a_symlinked_snapshot_folder_is_refused(signed, z3_root, tmp_path):
    ref, resources = signed
    outside = tmp_path / "outside" / ref.snapshot_id
    shutil.copytree(ref.path, outside)
    shutil.rmtree(ref.path, onerror=lambda *a: (unlock(Path(ref.path)), shutil.rmtree(ref.path)))
    os.symlink(outside, ref.path)
    result = run_factory(resources, ref.label)
    assert not result.success and materialized(result) == set()
    assert "refusing a symlinked snapshot folder" in failure_line(result)


def test_a_symlinked_data_file_is_refused(signed, tmp_path):
    ref, resources = signed
    folder = Path(ref.path)
    unlock(folder)
    outside = tmp_path / "elsewhere.parquet"
    shutil.copyfile(folder / "data.parquet", outside)  # same bytes: the hash and signature would pass
    (folder / "data.parquet").unlink()
    os.symlink(outside, folder / "data.parquet")
    result = run_factory(resources, ref.label)
    assert not result.success and materialized(result) == set()
    assert "refusing a symlink inside a snapshot" in failure_line(result)


def test_unsigned_is_insufficient_evidence_without_a_key_and_blocks_when_the_policy_requires_it(
        tmp_path, z3_root, sample_df, factory_resources, monkeypatch):
    data = tmp_path / "data.parquet"
    sample_df.iloc[:3000].to_parquet(data, index=False)
    ref, _ = add_snapshot(z3_root, DATASET, SAMPLE_CONTRACT, data, dataset_config=SAMPLE_DATASET_CONFIG)
    lax = run_factory(factory_resources, ref.label, assets=SNAPSHOT_ONLY)
    assert lax.success
    gate = json.loads(Path(lax.asset_value("z3_snapshot").files["gates"]).read_text())[0]
    assert (gate["name"], gate["verdict"], gate["value"]) == ("snapshot_signature", "INSUFFICIENT_EVIDENCE", None)
    strict = tmp_path / "release.yaml"
    strict.write_text("defaults:\n  z3:\n    signature: required\n")
    resources = {**factory_resources, "policy": PolicyStore(path=str(strict))}
    result = run_factory(resources, ref.label)
    assert check_verdicts(result)["snapshot_signature"] is False and materialized(result) == {"z3_snapshot"}


def test_registration_refuses_a_bad_z3_key_and_leaves_nothing(tmp_path, z3_root, sample_df):
    data = tmp_path / "data.parquet"
    sample_df.iloc[:500].to_parquet(data, index=False)
    bad = tmp_path / "not-a-key.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")  # pragma: allowlist secret
    with pytest.raises(Z4Error, match="cannot read the Z3 signing key"):
        add_snapshot(z3_root, DATASET, SAMPLE_CONTRACT, data, signing_key=bad)
    assert [p.name for p in z3_root.rglob("*") if p.is_file()] == []


def test_z4_verify_checks_the_packaged_manifest_against_the_z3_key(sample_factory_run, signing_key, z3_key,
                                                                    z3_keys, capsys):
    """The shared run's snapshot was signed with the session's Z3 key: its package carries the signed manifest."""
    from z4_assets.cli import main
    from z4_assets.core.packaging import verify_package

    assert check_verdicts(sample_factory_run["result"])["snapshot_signature"] is True
    tar, pub = sample_factory_run["run_dir"] / "package.tar.gz", str(signing_key.with_name("signing.pub.pem"))
    z3_pub = str(z3_key.with_name("z3.pub.pem"))
    assert main(["verify", str(tar), "--key", pub, "--z3-key", z3_pub]) == 0
    assert "snapshot taiwan_credit_default@" in capsys.readouterr().out
    unchecked = verify_package(tar, pub)
    assert unchecked.ok and unchecked.checks[-1]["detail"].startswith("not checked: no Z3 public key given")
    wrong = verify_package(tar, pub, z3_public_key=z3_keys["pub"])  # another registrar's key
    assert not wrong.ok and wrong.first_problem.startswith("z3_snapshot: Z3 signature does not verify")


def test_the_origin_check_refuses_an_unsigned_or_rebound_manifest(sample_factory_run, z3_key, tmp_path):
    """The check alone, on a copy of the package folder (the factory's signature is verify's first check)."""
    from z4_assets.core.packaging._snapshot_origin import (MANIFEST_IN_PACKAGE, SIGNATURE_IN_PACKAGE,
                                                           check_snapshot_origin)

    pkg = tmp_path / "pkg"
    shutil.copytree(sample_factory_run["run_dir"] / "package", pkg)
    z3_pub = z3_key.with_name("z3.pub.pem")
    assert check_snapshot_origin(pkg, z3_pub).endswith("signed by the Z3 key")
    m = json.loads((pkg / MANIFEST_IN_PACKAGE).read_text())
    (pkg / MANIFEST_IN_PACKAGE).write_text(json.dumps({**m, "hash": "f" * 64}))
    with pytest.raises(Z4Error, match="but the provenance says the model was trained on"):
        check_snapshot_origin(pkg, z3_pub)
    (pkg / MANIFEST_IN_PACKAGE).write_text(json.dumps({**m, "row_count": 1}))
    with pytest.raises(Z4Error, match="manifest.json is not the one the Z3 key signed"):
        check_snapshot_origin(pkg, z3_pub)
    (pkg / SIGNATURE_IN_PACKAGE).unlink()
    with pytest.raises(Z4Error, match="not signed by the Z3 key"):
        check_snapshot_origin(pkg, z3_pub)


def test_keygen_z3_refuses_the_factory_key_folder_and_snapshot_add_signs(tmp_path, monkeypatch, capsys, sample_df):
    from z4_assets.cli import main

    factory_key = tmp_path / "keys" / "signing.pem"
    monkeypatch.setenv("Z4_SIGNING_KEY", str(factory_key))
    monkeypatch.setenv("Z4_Z3_ROOT", str(tmp_path / "z3"))
    assert main(["keygen", "--z3", "--out", str(tmp_path / "keys" / "z3.pem")]) == 2
    assert "refusing to put the Z3 key beside the factory's signing key" in capsys.readouterr().err
    assert not (tmp_path / "keys").exists() or not list((tmp_path / "keys").iterdir())
    assert main(["keygen", "--z3", "--out", str(tmp_path / "registrar" / "z3.pem")]) == 0
    assert "Z4_Z3_PUBKEY=" in capsys.readouterr().out
    assert oct((tmp_path / "registrar" / "z3.pem").stat().st_mode & 0o777) == "0o600"
    data = tmp_path / "data.parquet"
    sample_df.iloc[:500].to_parquet(data, index=False)
    assert main(["snapshot", "add", "--dataset-id", DATASET, "--contract", str(SAMPLE_CONTRACT),
                 "--z3-key", str(tmp_path / "registrar" / "z3.pem"), str(data)]) == 0
    assert "Z3 signature: manifest.sig" in capsys.readouterr().out
    (snap,) = (tmp_path / "z3" / DATASET).iterdir()
    verify_manifest((snap / MANIFEST).read_bytes(), (snap / SIGNATURE_FILE).read_bytes(),
                    tmp_path / "registrar" / "z3.pub.pem", DATASET, snap.name)


def test_the_sensor_does_not_list_a_linked_folder_and_waits_on_a_wrong_suffix(signed, z3_root, tmp_path):
    from z4_assets.core.snapshot import examine
    from z4_assets.core.z3_sources import LocalFolderSource

    ref, _ = signed
    outside = tmp_path / "outside"
    shutil.copytree(ref.path, outside)
    linked = z3_root / DATASET / (ref.snapshot_id.rpartition("-")[0][:-1] + "9-" + ref.manifest["hash"][:12])
    os.symlink(outside, linked)
    source = LocalFolderSource(z3_root)
    assert [i.snapshot_id for i in source.listing()] == [ref.snapshot_id]
    wrong = z3_root / DATASET / "20990101T000000000000Z-000000000000"
    shutil.copytree(ref.path, wrong)
    unlock(wrong)
    rewrite_manifest(wrong, snapshot_id=wrong.name)
    (item,) = [i for i in source.listing() if i.snapshot_id == wrong.name]
    assert "does not end with the data hash's first 12 hex digits" in examine(source, item).reason
