"""The per-dataset card config is copied into the snapshot, hashed, and checked at registration."""

from __future__ import annotations

import yaml

from z4_assets.cli import main
from z4_assets.core.files import sha256_file
from z4_assets.core.z3 import add_snapshot
from z4_assets_tests.conftest import DATASET, SAMPLE_CONTRACT, SAMPLE_DATASET_CONFIG


def _data(tmp_path, sample_df):
    path = tmp_path / "data.parquet"
    sample_df.head(500).to_parquet(path, index=False)
    return path


def test_config_is_copied_and_hashed_and_part_of_the_snapshot_identity(tmp_path, sample_df, z3_root):
    data = _data(tmp_path, sample_df)
    ref, created = add_snapshot(z3_root, DATASET, SAMPLE_CONTRACT, data, dataset_config=SAMPLE_DATASET_CONFIG)
    assert created and ref.dataset_config_path.read_bytes() == SAMPLE_DATASET_CONFIG.read_bytes()
    assert ref.manifest["dataset_config_hash"] == sha256_file(SAMPLE_DATASET_CONFIG)
    again, created = add_snapshot(z3_root, DATASET, SAMPLE_CONTRACT, data, dataset_config=SAMPLE_DATASET_CONFIG)
    assert not created and again.snapshot_id == ref.snapshot_id

    changed = tmp_path / "dataset.yaml"
    doc = yaml.safe_load(SAMPLE_DATASET_CONFIG.read_text())
    changed.write_text(yaml.safe_dump({**doc, "intended_use": "Portfolio monitoring only."}))
    other, created = add_snapshot(z3_root, DATASET, SAMPLE_CONTRACT, data, dataset_config=changed)
    assert created and other.snapshot_id != ref.snapshot_id  # a new purpose is a new snapshot
    bare, created = add_snapshot(z3_root, DATASET, SAMPLE_CONTRACT, data)
    assert created and bare.dataset_config_path is None


def test_bad_config_is_one_line_naming_the_file_and_writes_nothing(tmp_path, sample_df, z3_root,
                                                                    monkeypatch, capsys):
    data = _data(tmp_path, sample_df)
    monkeypatch.setenv("Z4_Z3_ROOT", str(z3_root))
    doc = yaml.safe_load(SAMPLE_DATASET_CONFIG.read_text())
    cases = {
        "no_purpose.yaml": ({k: v for k, v in doc.items() if k != "purpose"}, "at purpose: Field required"),
        "empty_scope.yaml": ({**doc, "out_of_scope": []}, "at out_of_scope"),
        "other_id.yaml": ({**doc, "dataset_id": "telco_churn"}, "is for 'telco_churn', not"),
        "not_a_mapping.yaml": (["purpose"], "must be a YAML mapping"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        path.write_text(yaml.safe_dump(content))
        code = main(["snapshot", "add", "--dataset-id", DATASET, "--contract", str(SAMPLE_CONTRACT),
                     "--dataset-config", str(path), str(data)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.count("\n") == 0, err
        assert err.startswith(f"z4: error: {path}:") and expected in err, err
    assert [p for p in z3_root.rglob("*") if p.is_file()] == []
