"""Training to convergence: an epoch budget scaled to the data, class weighting for an imbalanced
target, early stopping on the validation loss; and the small credit datasets give models that flag
someone (the default before this flagged nobody on both)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from z4_assets.core.training._schedule import EarlyStopping, class_weights, schedule

DEFAULTS = {"hidden_sizes": [64, 32], "epochs": None, "batch_size": 512, "learning_rate": 2e-3,
            "weight_decay": 1e-5, "seed": 7, "threads": 1, "step_budget": 400, "min_epochs": 5,
            "max_epochs": 200, "patience": 10, "min_delta": 1e-4, "class_weight": "auto",
            "imbalance_below": 0.4}
BEFORE = {"hidden_sizes": [64, 32], "epochs": 8, "batch_size": 512, "learning_rate": 2e-3,
          "weight_decay": 1e-5, "seed": 7, "threads": 1}   # the defaults before this change


def test_the_defaults_train_to_convergence_and_the_mlp_schema_agrees():
    """TrainConfig's defaults are the converged schedule (CONVERGED), and the mlp family's schema has the
    same defaults (a dataset config's pin is judged against them: core/training/_families.py)."""
    from z4_assets.assets.model import TrainConfig
    from z4_assets.core.training import CONVERGED
    from z4_assets.core.training._families import MlpHyperparameters

    mlp = {k: v for k, v in TrainConfig().model_dump().items() if k != "model"}   # model: issue 17's section
    assert {**mlp, **CONVERGED} == mlp == DEFAULTS
    assert mlp == MlpHyperparameters().model_dump()


def test_a_dataset_pin_holds_unless_the_run_asks_otherwise():
    from z4_assets.assets.model import TrainConfig
    from z4_assets.core.training._families import model_section

    pin = {"family": "mlp", "hyperparameters": {"epochs": 8, "patience": 0, "class_weight": "none"}}
    defaults = {k: v for k, v in TrainConfig().model_dump().items() if k != "model"}
    hp = model_section({}, pin, defaults).hyperparameters
    assert (hp["epochs"], hp["patience"], hp["class_weight"]) == (8, 0, "none")
    hp = model_section({}, pin, {**defaults, "epochs": 3}).hyperparameters       # set to another value: wins
    assert (hp["epochs"], hp["patience"]) == (3, 0)
    hp = model_section({"hyperparameters": {"epochs": None, "patience": 10}}, pin, defaults).hyperparameters
    assert (hp["epochs"], hp["patience"], hp["class_weight"]) == (None, 10, "none")  # the run's model section
    hp = model_section({}, None, defaults).hyperparameters                       # no pin: the defaults
    assert (hp["epochs"], hp["patience"], hp["class_weight"]) == (None, 10, "auto")


def test_epoch_budget_scales_with_the_data_and_a_number_caps_it():
    y = np.r_[np.zeros(80), np.ones(20)].astype(int)
    small, large = schedule(DEFAULTS, 700, y), schedule(DEFAULTS, 21_000, y)
    assert small.epochs == 200 and large.epochs == 10          # 2 batches an epoch vs 42
    assert schedule({**DEFAULTS, "step_budget": 10}, 21_000, y).epochs == 5   # min_epochs
    fixed = schedule({**DEFAULTS, "epochs": 3}, 700, y)
    assert fixed.epochs == 3 and fixed.budget_rule.startswith("fixed")


def test_class_weights_balance_an_imbalanced_target_only():
    y = np.r_[np.zeros(88), np.ones(12)].astype(int)
    w, why = class_weights(y, "auto", 0.4)
    assert w is not None and w[1] / w[0] == pytest.approx(88 / 12, rel=1e-4) and "0.120" in why
    assert w[0] * 88 == pytest.approx(w[1] * 12, rel=1e-4)    # each class weighs the same in total
    assert class_weights(np.r_[np.zeros(55), np.ones(45)].astype(int), "auto", 0.4)[0] is None
    assert class_weights(y, "none", 0.4)[0] is None
    assert class_weights(np.zeros(10, dtype=int), "balanced", 0.4)[0] is None   # one class: nothing to weigh
    with pytest.raises(ValueError, match="class_weight 'balance'"):
        class_weights(y, "balance", 0.4)


def test_a_config_stored_before_these_keys_means_the_old_training():
    plan = schedule(BEFORE, 700, np.r_[np.zeros(88), np.ones(12)].astype(int))
    assert (plan.epochs, plan.patience, plan.class_weights) == (8, 0, None)


def test_early_stopping_waits_patience_epochs_after_the_best():
    stop = EarlyStopping(patience=3, min_delta=0.01)
    losses = [1.0, 0.8, 0.795, 0.79, 0.81, 0.9]
    stopped = None
    for epoch, loss in enumerate(losses, start=1):
        stop.improved(epoch, loss)
        if stop.should_stop(epoch):
            stopped = epoch
            break
    assert stop.best_epoch == 2 and stopped == 5      # 0.795 and 0.79 are within min_delta of 0.8


def _fit(df, contract, hp):
    from z4_assets.core.policy import load_policy
    from z4_assets.core.split import TEST, assign_split
    from z4_assets.core.training._fit import fit_and_evaluate
    from z4_assets.core.training._mlp import predict_proba

    split, _ = assign_split(df, contract, load_policy(None, contract.dataset_id).split)
    fit = fit_and_evaluate(df, contract, split, hp)
    y = (df[contract.target.column] == contract.target.positive).to_numpy()[split == TEST]
    flagged = predict_proba(fit.train.model, fit.spec.transform(df[split == TEST])) >= 0.5
    return fit, flagged.mean(), flagged[y].mean(), (flagged == y).mean(), max(y.mean(), 1 - y.mean())


def _small_cases(tmp_path):
    from z4_assets.core.contract import load_contract
    from z4_assets_tests.conftest import SAMPLE_CONTRACT
    from z4_assets_tests.small_credit import loanapp_files, taiwan_sample

    c, d, _ = loanapp_files(tmp_path)
    return {"loanapp": (pd.read_parquet(d), load_contract(c)[0]),
            "taiwan1000": (taiwan_sample(1000), load_contract(SAMPLE_CONTRACT)[0])}


def test_the_small_credit_datasets_give_models_that_flag_someone(tmp_path):
    for name, (df, contract) in _small_cases(tmp_path).items():
        _, rate, tpr, acc, majority = _fit(df, contract, {**BEFORE, "patience": 0, "class_weight": "none"})
        assert rate == 0 and acc == majority, f"{name}: the old default flagged someone after all"
        fit, rate, tpr, acc, majority = _fit(df, contract, DEFAULTS)
        assert 0.05 < rate < 0.5 and tpr > 0.4, f"{name}: selection rate {rate}, TPR {tpr}"
        s = fit.train.schedule
        assert s["class_weights"] and s["stopped_early_at"], f"{name}: {s}"
        assert fit.train.best_epoch < s["stopped_early_at"] <= s["epoch_budget"]
