"""Security sub-tests called directly on the real sample: each gate passes on the real model and fails on a bad one."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import torch

from z4_assets.core.contract import Contract
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import atomic_write_json
from z4_assets.core.training._fit import fit_and_evaluate, save_model
from z4_assets.core.training._model_io import load_model
from z4_assets.core.policy import load_policy
from z4_assets.core.run_folder import RunFolder
from z4_assets.core.security import _evasion as evasion
from z4_assets.core.security._backdoor import plant_backdoor
from z4_assets.core.security._evaluate import (evasion_gate, evaluate_security, integrity_gate,
                                              membership_gate, pinned_threads, poisoning_gates)
from z4_assets.core.security._integrity import output_integrity
from z4_assets.core.security._poisoning import screen_poisoning
from z4_assets.core.security._privacy import membership_inference
from z4_assets.core.split import TEST, TRAIN, assign_split
from z4_assets.core.training._mlp import state_dict_digest, train_mlp
from z4_assets.core.validation import conform_dtypes
from z4_assets_tests.conftest import DATASET

POLICY = load_policy(None, DATASET)
SEC = POLICY.security  # the SecurityPolicy section, as the stage passes it
FAST = {"hidden_sizes": [64, 32], "epochs": 3, "batch_size": 512, "learning_rate": 2e-3,
        "weight_decay": 1e-5, "seed": 7, "threads": 2}

# Trigger designs. A was used to tune the screen; B and C were fixed before the screen first
# saw them and were not tuned on (see the report of issue 3).
DESIGN_A = {"pattern": {"PAY_AMT4": "max", "PAY_AMT6": "max"}, "source_positive": True, "seed": 11}
DESIGN_B = {"pattern": {"EDUCATION": 4, "PAY_AMT2": 12345.0, "BILL_AMT5": 54321.0},
            "source_positive": False, "seed": 22}
DESIGN_C = {"pattern": {"PAY_5": 7, "PAY_6": 7}, "source_positive": True, "seed": 33}


@pytest.fixture(autouse=True)
def _one_thread():
    """As the stage runs (policy security.threads): 2 torch/OpenMP threads crawl on a shared 2-core box."""
    with pinned_threads(SEC.threads):
        yield


@pytest.fixture(scope="session")
def contract(sample_contract_doc) -> Contract:
    return Contract.model_validate(sample_contract_doc)


@pytest.fixture(scope="session")
def frame(sample_df, contract):
    return conform_dtypes(sample_df, contract)


@pytest.fixture(scope="session")
def fitted(frame, contract):
    split, _ = assign_split(frame, contract, POLICY.split)
    return split, fit_and_evaluate(frame, contract, split, FAST)


def _precision_recall(screen, planted: np.ndarray) -> tuple[float, float]:
    truth = np.zeros(len(screen.flagged), dtype=bool)
    truth[planted] = True
    tp = int((screen.flagged & truth).sum())
    return tp / max(int(screen.flagged.sum()), 1), tp / len(planted)


@pytest.mark.parametrize("design,min_precision", [
    pytest.param(DESIGN_A, 1.0, id="A-two-amounts-at-max-tuned-on"),
    pytest.param(DESIGN_B, 1.0, id="B-category-and-two-odd-amounts-not-tuned-on"),
    pytest.param(DESIGN_C, 0.98, id="C-delinquency-codes-flipped-to-good-not-tuned-on"),
])
def test_planted_backdoor_is_found_with_precision_and_recall(design, min_precision, frame, contract):
    """Measured: A 1.000/1.000, B 1.000/1.000, C 0.987/1.000 (precision/recall on 600 planted rows)."""
    poisoned, planted = plant_backdoor(frame, contract, design["pattern"], 0.02,
                                       design["source_positive"], design["seed"])
    screen = screen_poisoning(poisoned, contract, SEC.poisoning, SEC.seed)
    precision, recall = _precision_recall(screen, planted)
    assert len(planted) == 600
    assert precision >= min_precision and recall == 1.0, (precision, recall)
    assert len(screen.clusters) == 1
    expected = {k: (poisoned[k].iloc[planted[0]].item()) for k in design["pattern"]}
    assert screen.clusters[0]["pattern"] == expected
    gates = {g.name: g for g in poisoning_gates(screen, SEC.poisoning, poisoned["ID"].to_numpy())}
    assert not gates["poisoning_share"].passed and not gates["poisoning_clusters"].passed
    assert gates["poisoning_share"].value == pytest.approx(screen.flagged.sum() / len(poisoned), abs=1e-6)


def test_clean_sample_flags_nothing_and_passes(frame, contract):
    screen = screen_poisoning(frame, contract, SEC.poisoning, SEC.seed)
    assert screen.report["flagged_share"] <= 0.01
    assert screen.report["flagged_rows"] == 0 and screen.clusters == []
    assert screen.report["regions_examined"] > 50, "the screen must have looked at real candidates"
    assert max(r["excess"] for r in screen.report["closest_regions"]) < SEC.poisoning.excess_min
    assert all(g.passed for g in poisoning_gates(screen, SEC.poisoning, frame["ID"].to_numpy()))


def test_membership_gate_fails_an_overfitted_model_and_passes_the_normal_one(frame, contract, fitted):
    split, outcome = fitted
    x = outcome.spec.transform(frame)
    y = (frame[contract.target.column] == 1).to_numpy(dtype=np.int64)
    train, test = np.flatnonzero(split == TRAIN), np.flatnonzero(split == TEST)
    normal = membership_inference(outcome.train.model, x[train], y[train], x[test], y[test],
                                  SEC.membership, SEC.seed)
    tiny = np.random.default_rng(0).choice(train, 600, replace=False)   # >= membership.min_rows_per_side
    hp = {**FAST, "hidden_sizes": [256, 256], "epochs": 100, "batch_size": 64, "weight_decay": 0.0,
          "threads": 1}
    # validation = the training rows, so train_mlp keeps the most memorised epoch, not the best one
    overfit = train_mlp(x[tiny], y[tiny], x[tiny], y[tiny], {**hp, "learning_rate": 3e-3})
    attacked = membership_inference(overfit.model, x[tiny], y[tiny], x[test], y[test],
                                    SEC.membership, SEC.seed)

    assert membership_gate(normal, SEC.membership).passed, normal
    assert normal["attack_auc"] < 0.53
    gate = membership_gate(attacked, SEC.membership)
    assert not gate.passed and attacked["attack_auc"] > 0.6, attacked
    assert attacked["member_accuracy"] > attacked["non_member_accuracy"] + 0.1


def test_evasion_passes_by_default_and_fails_a_strict_policy(frame, contract, fitted):
    split, outcome = fitted
    test = np.flatnonzero(split == TEST)[:2000]
    y = (frame[contract.target.column] == 1).to_numpy(dtype=np.int64)[test]
    bounds = evasion.feature_bounds(outcome.spec, contract, frame)
    report = evasion.robustness_curve(outcome.train.model, outcome.spec.transform(frame.iloc[test]), y,
                                      bounds, SEC.evasion)
    assert evasion_gate(report, SEC.evasion).passed, report["accuracy_drop"]
    strict = SEC.evasion.model_copy(update={"max_accuracy_drop": 0.001})
    assert not evasion_gate(report, strict).passed
    assert report["validity"] == {"rows_outside_contract": 0, "rows_with_frozen_input_moved": 0}
    pgd = [p["pgd_auc"] for p in report["curve"]]
    assert pgd == sorted(pgd, reverse=True) and pgd[-1] < report["clean"]["auc"] - 0.2
    assert report["frozen_inputs"]["EDUCATION"] == "sensitive attribute (one-hot)"


def test_attacks_keep_rows_valid_and_immutable_columns_fixed(frame, sample_contract_doc, fitted):
    doc = copy.deepcopy(sample_contract_doc)
    doc["columns"]["LIMIT_BAL"]["immutable"] = True
    contract = Contract.model_validate(doc)
    split, outcome = fitted
    spec, rows = outcome.spec, np.flatnonzero(split == TEST)[:500]
    x = spec.transform(frame.iloc[rows])
    y = (frame["default.payment.next.month"].iloc[rows] == 1).to_numpy(dtype=np.int64)
    bounds = evasion.feature_bounds(spec, contract, frame)
    assert bounds.frozen_reasons["LIMIT_BAL"] == "immutable in the contract"
    x_adv = evasion.Attacker(outcome.train.model, x, y, bounds, 10).generate("pgd", 1.0)
    names = spec.output_names
    frozen = [i for i, n in enumerate(names) if n == "LIMIT_BAL" or n.startswith("EDUCATION=")]
    assert np.array_equal(x_adv[:, frozen], x[:, frozen])
    assert (np.abs(x_adv - x) > 1e-6).any(axis=1).mean() > 0.9, "the attack must move the other inputs"
    for name in ("PAY_0", "BILL_AMT1", "PAY_AMT1"):
        col = next(c for c in spec.columns if c["name"] == name)
        raw = x_adv[:, names.index(name)].astype(np.float64) * col["std"] + col["mean"]
        lo, hi = contract.columns[name].min, contract.columns[name].max
        assert raw.min() >= lo - 1e-3 * abs(lo or 1) and raw.max() <= hi + 1e-3 * abs(hi)
    pay = x_adv[:, names.index("PAY_0")].astype(np.float64)
    col = next(c for c in spec.columns if c["name"] == "PAY_0")
    assert np.allclose(pay * col["std"] + col["mean"], np.round(pay * col["std"] + col["mean"]), atol=1e-3)


def _broken(model, how: str):
    bad = copy.deepcopy(model)
    with torch.no_grad():
        if how == "nan":
            bad[0].weight[0, 0] = float("nan")
        else:
            bad[-1].weight.zero_()
            bad[-1].bias.zero_()
    return bad


@pytest.mark.parametrize("how,failed", [("nan", {"scores_finite", "perturbed_scores_finite",
                                                 "distinct_scores", "score_std"}),
                                        ("constant", {"distinct_scores", "score_std"})])
def test_output_integrity_fails_nan_and_constant_models(how, failed, frame, contract, fitted):
    split, outcome = fitted
    rows = frame.iloc[np.flatnonzero(split == TEST)[:1000]]
    good = output_integrity(outcome.train.model, outcome.spec, contract, rows, frame, SEC.integrity, 1)
    assert integrity_gate(good).passed and good["failed_checks"] == []
    bad = output_integrity(_broken(outcome.train.model, how), outcome.spec, contract, rows, frame,
                           SEC.integrity, 1)
    assert set(bad["failed_checks"]) == failed
    assert not integrity_gate(bad).passed


def test_same_model_and_snapshot_give_the_same_report(frame, contract, fitted):
    split, outcome = fitted
    rules = SEC.model_copy(update={"evasion": SEC.evasion.model_copy(update={"sample_rows": 1500}),
                                   "membership": SEC.membership.model_copy(update={"rows_per_side": 1500})})
    runs = [evaluate_security(frame, contract, split, outcome.train.model, outcome.spec, rules) for _ in range(2)]
    dump = [json.dumps({"adv": r.adversarial, "privacy": r.privacy, "integrity": r.integrity,
                        "gates": [g.as_dict() for g in r.gates]}, sort_keys=True, default=str) for r in runs]
    strip = [re.sub(r'"seconds": [0-9.e-]+', '"seconds": 0', d) for d in dump]
    assert strip[0] == strip[1]
    assert all(r.passed for r in runs), [g.summary for g in runs[0].gates if not g.passed]


def test_load_model_round_trip_and_tamper(tmp_path, frame, contract, fitted):
    split, outcome = fitted
    files = RunFolder(tmp_path, "run-1").stage("model")
    save_model(files, outcome, contract)
    model, spec, config = load_model(files.dir, outcome.train.digest)
    x = spec.transform(frame.head(200))
    with torch.no_grad():
        assert torch.equal(model.module(torch.from_numpy(x)), outcome.train.model.eval()(torch.from_numpy(x)))
    assert config["state_dict_sha256"] == outcome.train.digest and files.weights.name == "model.safetensors"

    # a torch.save pickle in the folder is refused before anything is read (issue 17)
    torch.save(model.module.state_dict(), files.dir / "weights.pt")
    with pytest.raises(Z4Error, match="refusing a pickle file in the model folder: weights.pt"):
        load_model(files.dir)
    (files.dir / "weights.pt").unlink()

    # other weights with a config rewritten to match: consistent on disk, refused by the lineage's digest
    from z4_assets.core.training._mlp_family import safetensors_bytes

    module = model.module
    with torch.no_grad():
        module[0].bias[0] += 1.0
    files.weights.write_bytes(safetensors_bytes(module, config["hidden_sizes"], config["inputs"]))
    atomic_write_json(files.config, {**config, "state_dict_sha256": state_dict_digest(module)})
    assert load_model(files.dir)[2]["state_dict_sha256"] != outcome.train.digest
    with pytest.raises(Z4Error, match="differs from the .* this lineage was built on"):
        load_model(files.dir, outcome.train.digest)

    # weights changed behind the config's back
    atomic_write_json(files.config, config)
    with pytest.raises(Z4Error, match="weights digest .* differs from the recorded"):
        load_model(files.dir)
    files.feature_spec.unlink()
    with pytest.raises(Z4Error, match="feature_spec.json: model file is missing"):
        load_model(files.dir)


def test_the_accuracy_drop_interval_is_a_paired_bootstrap_of_the_attacked_rows():
    from z4_assets.core.security._evasion import drop_interval

    y = np.array([1, 0] * 100)
    right = np.where(y == 1, 0.9, 0.1)
    assert drop_interval(y, right, right, 0)["accuracy_drop_ci"] == [0.0, 0.0]        # nothing evaded
    assert drop_interval(y, right, 1 - right, 0)["accuracy_drop_ci"] == [1.0, 1.0]    # every row evaded
    flipped = right.copy()
    flipped[:20] = 1 - flipped[:20]                                                   # 10% evaded
    lo, hi = drop_interval(y, right, flipped, 0)["accuracy_drop_ci"]
    assert 0.04 < lo < 0.1 < hi < 0.16
    assert drop_interval(y[:0], right[:0], right[:0], 0)["accuracy_drop_ci"] == [None, None]
