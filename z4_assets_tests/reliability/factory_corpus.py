"""The bad-input corpus, second half: snapshots and configs that register (or were tampered with
after registration) and must be stopped by the factory run, at a named blocking check or by a
step that fails with one clear line."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import yaml

from z4_assets.core.contract import Contract
from z4_assets.core.files import sha256_file
from z4_assets.core.security._backdoor import plant_backdoor
from z4_assets.resources import PolicyStore
from z4_assets_tests.conftest import DATASET, TARGET

SMALL_ROWS = 6000  # measured: a seeded 6k sample passes every snapshot and hygiene gate


@dataclass
class Bench:
    """What a case may break: a sample frame, the contract, the Z3 root and the run's resources."""

    tmp: Path
    df: pd.DataFrame
    doc: dict
    register: Callable
    z3_root: Path
    resources: dict


@dataclass(frozen=True)
class FactoryCase:
    id: str
    prepare: Callable[[Bench], str | None]  # registers/tampers; returns the run's partition (None: the newest)
    stage: str  # the asset that stops the run
    check: str | None  # the blocking check that fails; None: the step itself fails with a clear line
    expect: str  # a phrase of the check's metadata, or of the step's failure message
    full_sample: bool = False  # needs all 30k rows (the run goes as far as the security stage)
    skip: tuple[str, ...] = ()  # assets the run leaves out: they cannot matter to this case


def _reg(b: Bench, df: pd.DataFrame | None = None, doc: dict | None = None, fmt: str = "parquet"):
    # the run-time gates must catch what a snapshot made before `z4 snapshot add` checked its contract holds
    return b.register(b.df if df is None else df, doc or b.doc, fmt=fmt, check_contract=False)


def _frame(b: Bench, column: str, value, rows: int = 5, dtype: str | None = None) -> pd.DataFrame:
    df = b.df.copy()
    if dtype:
        df[column] = df[column].astype(dtype)
    df.loc[df.index[:rows], column] = value
    return df


def _doc(b: Bench, change: Callable[[dict], None]) -> dict:
    doc = copy.deepcopy(b.doc)
    change(doc)
    return doc


def _writable(path: Path) -> Path:
    os.chmod(path, 0o644)  # snapshots are registered read-only; the tamperer does not care
    return path




def _policy(b: Bench, text: str) -> None:
    path = b.tmp / "policy.yaml"
    path.write_text(text)
    b.resources["policy"] = PolicyStore(path=str(path))


# --- schema breaks, NaN/inf, huge values, a contract that contradicts the data ---------------------

def _missing_column(b):
    _reg(b, b.df.drop(columns=["PAY_AMT6"]))


def _extra_column(b):
    _reg(b, b.df.assign(shadow_score=np.linspace(0, 1, len(b.df))))


def _text_in_numeric(b):
    _reg(b, _frame(b, "LIMIT_BAL", "twenty thousand", 40, dtype=object), fmt="csv")


def _category_out_of_range(b):
    _reg(b, _frame(b, "EDUCATION", 9, 12))


def _nan(b):
    _reg(b, _frame(b, "LIMIT_BAL", np.nan, 9))


def _inf(b):
    _reg(b, _frame(b, "PAY_AMT1", np.inf, 3))


def _huge_float(b):
    _reg(b, _frame(b, "BILL_AMT1", 1e300, 2))


def _beyond_int64(b):
    return _reg(b, _frame(b, "ID", 10**20, 1, dtype=object), fmt="csv").label  # stored as float 1e20: not an integer


def _target_categories_mismatch(b):
    def change(d):
        d["columns"][TARGET] = {"dtype": "string", "categories": ["no", "yes"]}
        d["target"]["positive"] = "yes"
    _reg(b, doc=_doc(b, change))


# --- leakage, backdoors, duplicates, conflicting labels --------------------------------------------

def _leaky(b, name: str, flip_share: float):
    rng = np.random.default_rng(5)
    flip = rng.random(len(b.df)) < flip_share
    df = b.df.assign(**{name: np.where(flip, 1 - b.df[TARGET], b.df[TARGET])})
    _reg(b, df, _doc(b, lambda d: d["columns"].update({name: {"dtype": "integer", "categories": [0, 1],
                                                                "group": "servicing"}})))


def _duplicates(b):
    dup = b.df.sample(frac=0.03, random_state=3).copy()
    dup["ID"] = np.arange(10**6, 10**6 + len(dup))
    _reg(b, pd.concat([b.df, dup], ignore_index=True))


def _conflicting_labels(b):
    twin = b.df.sample(frac=0.02, random_state=4).copy()
    twin["ID"] = np.arange(10**6, 10**6 + len(twin))
    twin[TARGET] = 1 - twin[TARGET]
    _reg(b, pd.concat([b.df, twin], ignore_index=True))


def _backdoor(b):
    poisoned, _ = plant_backdoor(b.df, Contract.model_validate(b.doc), {"PAY_AMT4": "max", "PAY_AMT6": "max"},
                                 share=0.02, source_positive=True, seed=11)
    _reg(b, poisoned)


# --- tampering after registration: hashes, truncation, manifests -----------------------------------

def _tampered_data(b):
    ref = _reg(b)
    b.df.head(len(b.df) - 1).to_parquet(_writable(ref.data_path), index=False)


def _tampered_manifest_hash(b):
    ref = _reg(b)
    path = _writable(Path(ref.path) / "manifest.json")
    m = json.loads(path.read_text())
    m["hash"] = "0" * 64
    path.write_text(json.dumps(m))
    return ref.label  # named: a listing of the root skips a snapshot whose id no longer matches its hash


def _tampered_contract(b):
    ref = _reg(b)
    path = _writable(ref.contract_path)
    doc = yaml.safe_load(path.read_text())
    del doc["columns"]["AGE"]["max"]  # loosen a rule after the fact
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _manifest(b, text: str | None) -> str:
    ref = _reg(b)
    path = _writable(Path(ref.path) / "manifest.json")
    path.unlink() if text is None else path.write_text(text)
    return ref.label  # its partition, added when it registered; the manifest broke afterwards


def _manifest_escapes(b):
    ref = _reg(b)
    outside = b.tmp / "outside.parquet"
    b.df.to_parquet(outside, index=False)
    # a consistent forgery: the hash is the outside file's, so only the path gives it away
    manifest = dict(ref.manifest, data_file=f"../../../{outside.name}", hash=sha256_file(outside))
    _writable(Path(ref.path) / "manifest.json").write_text(json.dumps(manifest))
    return ref.label


# --- policies and partition keys -------------------------------------------------------------------

def _policy_unknown_key(b):
    _reg(b)
    _policy(b, "defaults:\n  hygiene: {duplicate_share_mx: 0.5}\n")


def _policy_wrong_type(b):
    _reg(b)
    _policy(b, "defaults:\n  hygiene: {duplicate_share_max: high}\n")


def _policy_dataset_unknown_key(b):
    _reg(b)
    _policy(b, f"defaults: {{}}\ndatasets:\n  {DATASET}: {{performance: {{test_auc_minimum: 0.5}}}}\n")


def _traversal_partition(b) -> str:
    """A rogue Z3 root beside the real one holds a valid snapshot: a partition key that walks out of the
    Z3 root must not reach it. (Unknown and malformed keys in general: test_factory_e2e.)"""
    ref = _reg(b)
    rogue = b.z3_root.parent / "rogue"
    rogue.mkdir()
    os.rename(Path(ref.path).parent, rogue / DATASET)
    return f"../rogue/{DATASET}@{ref.snapshot_id}"


FACTORY_CASES = [
    FactoryCase("missing_column", _missing_column, "z3_snapshot", "contract", "PAY_AMT6"),
    FactoryCase("extra_column", _extra_column, "z3_snapshot", "contract", "shadow_score"),
    FactoryCase("wrong_dtype_text_in_numeric", _text_in_numeric, "z3_snapshot", "contract", "LIMIT_BAL"),
    FactoryCase("category_out_of_range", _category_out_of_range, "z3_snapshot", "contract", "EDUCATION"),
    FactoryCase("nan_in_non_nullable", _nan, "z3_snapshot", "contract", "LIMIT_BAL"),
    FactoryCase("inf_value", _inf, "z3_snapshot", "contract", "PAY_AMT1"),
    FactoryCase("huge_value_1e300", _huge_float, "z3_snapshot", "contract", "BILL_AMT1"),
    FactoryCase("integer_beyond_int64", _beyond_int64, "z3_snapshot", "contract", "'column': 'ID'"),
    FactoryCase("contract_target_categories_mismatch", _target_categories_mismatch, "z3_snapshot", "contract",
                "target must have exactly two classes"),
    FactoryCase("label_near_copy_as_feature", lambda b: _leaky(b, "bureau_flag", 0.03), "hygiene_report",
                "target_leakage", "bureau_flag"),
    FactoryCase("duplicated_rows_3pct", _duplicates, "hygiene_report", "duplicate_rows", "'duplicate_rows': 183"),
    FactoryCase("conflicting_labels", _conflicting_labels, "hygiene_report", "conflicting_labels", "'rows': 240"),
    FactoryCase("tampered_data_wrong_manifest_hash", _tampered_data, "z3_snapshot", "snapshot_hash", "recomputed"),
    # a recomputed-looking hash no longer matches the snapshot id: refused before any gate reads it
    FactoryCase("tampered_manifest_hash", _tampered_manifest_hash, "z3_snapshot", None,
                "does not end with the data hash's first"),
    FactoryCase("tampered_contract_after_registration", _tampered_contract, "z3_snapshot", "snapshot_hash",
                "contract.yaml"),
    FactoryCase("manifest_missing", lambda b: _manifest(b, None), "z3_snapshot", None,
                "manifest.json: snapshot has no manifest"),
    FactoryCase("manifest_malformed", lambda b: _manifest(b, '{"dataset_id": "taiwan'), "z3_snapshot", None,
                "manifest.json: malformed manifest"),
    FactoryCase("manifest_points_outside_snapshot", _manifest_escapes, "z3_snapshot", None,
                "is not a file inside the snapshot"),
    FactoryCase("policy_unknown_key", _policy_unknown_key, "z3_snapshot", None,
                "unknown policy key defaults.hygiene.duplicate_share_mx (did you mean 'duplicate_share_max'?)"),
    FactoryCase("policy_wrong_type", _policy_wrong_type, "z3_snapshot", None,
                "policy key defaults.hygiene.duplicate_share_max must be a number, not text 'high'"),
    FactoryCase("policy_dataset_override_unknown_key", _policy_dataset_unknown_key, "z3_snapshot", None,
                f"unknown policy key datasets.{DATASET}.performance.test_auc_minimum"),
    FactoryCase("path_traversal_in_partition_key", _traversal_partition, "z3_snapshot", None,
                f"invalid snapshot key '../rogue/{DATASET}@"),
    FactoryCase("planted_backdoor", _backdoor, "adversarial_eval", "poisoning_share", "flagged", full_sample=True,
                skip=("fairness_report",)),
]
