"""Model families (issue 17), in layers: the hyperparameter schemas, the exported artifacts (no pickle,
byte-stable ONNX, parity), the attacks per family, and membership on deliberately overfitted models."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from z4_assets.core.errors import Z4Error
from z4_assets.core.training._families import model_section, resolve_family

from z4_assets_tests.conftest import TARGET


def test_a_wrong_hyperparameter_gets_one_line_with_did_you_mean():
    with pytest.raises(Z4Error) as e:
        resolve_family("gbdt", {"num_leafs": 15})
    msg = str(e.value)
    assert "\n" not in msg and "'num_leafs'" in msg and "did you mean 'num_leaves'" in msg
    with pytest.raises(Z4Error, match="did you mean 'logistic'"):
        resolve_family("logistc")
    with pytest.raises(Z4Error, match="hyperparameter C of family logistic"):
        resolve_family("logistic", {"C": -1})
    assert resolve_family("logistic", {"C": 0.5}).hyperparameters["max_iter"] == 1000   # defaults filled in


def test_the_run_config_model_section_overrides_the_dataset_config():
    dataset = {"family": "gbdt", "hyperparameters": {"n_estimators": 50}}
    assert model_section({}, dataset).hyperparameters == {"n_estimators": 50}
    assert model_section({"family": "logistic"}, dataset).hyperparameters == {}   # another family: not inherited
    assert model_section({}, None, {"epochs": 3, "seed": 7}).hyperparameters == {"epochs": 3, "seed": 7}
    with pytest.raises(Z4Error, match="did you mean 'family'"):
        model_section({"famly": "gbdt"}, None)


def test_challenger_hyperparameters_are_checked_before_anything_trains():
    section = model_section({"challengers": ["gbdt", "logistic", "mlp"],
                             "challenger_hyperparameters": {"gbdt": {"num_leaves": 7}}},
                            {"family": "mlp", "challenger_hyperparameters": {"logistic": {"C": 0.5}}})
    families = section.challenger_families()
    assert list(families) == ["gbdt", "logistic"]       # the candidate's own family is not its challenger
    assert families["gbdt"].hyperparameters["num_leaves"] == 7 and families["logistic"].hyperparameters["C"] == 0.5
    with pytest.raises(Z4Error, match="did you mean 'num_leaves'"):
        model_section({"challengers": ["gbdt"], "challenger_hyperparameters": {"gbdt": {"num_leafs": 7}}},
                      None).challenger_families()
    # a malformed section is one line, never a validation traceback
    with pytest.raises(Z4Error, match=r"^model: challenger_hyperparameters\.gbdt: Input should be a valid dictionary"):
        model_section({"challengers": ["gbdt"], "challenger_hyperparameters": {"gbdt": 5}}, None)
    with pytest.raises(Z4Error, match=r"^model: challengers: Input should be a valid list"):
        model_section(None, {"challengers": "gbdt"})
    with pytest.raises(Z4Error, match="hyperparameters in the dataset config must be a mapping, got int"):
        model_section(None, {"hyperparameters": 3})
    with pytest.raises(Z4Error, match="'gdbt', which is not a challenger.*did you mean 'gbdt'"):
        model_section({"challengers": ["gbdt"], "challenger_hyperparameters": {"gdbt": {}}}, None).challenger_families()


def _row(family: str, auc: float, fair: bool = True, refused: str | None = None) -> dict:
    return {"family": family, "auc": {"point": auc},
            "fairness": {"passed": fair, "failed": [] if fair else ["fairness_equalized_odds_diff"]},
            "evasion": {"refused": refused}}


def test_the_policy_picks_the_simplest_eligible_family_within_the_margin():
    from z4_assets.core.training._challengers import pick

    assert pick([_row("mlp", 0.771), _row("logistic", 0.729)], 0.005)[0] == "mlp"
    chosen, reason = pick([_row("mlp", 0.771), _row("logistic", 0.768), _row("gbdt", 0.769)], 0.005)
    assert chosen == "logistic" and "within the policy margin of 0.005 of the best (mlp" in reason
    # the best AUC fails a fairness gate: the pick is among the families that pass
    chosen, reason = pick([_row("gbdt", 0.791, fair=False), _row("mlp", 0.771), _row("logistic", 0.729)], 0.005)
    assert chosen == "mlp" and "gbdt (fails fairness_equalized_odds_diff)" in reason
    chosen, reason = pick([_row("pkg.m:f", 0.80, refused="declares attack 'none'"), _row("logistic", 0.70)], 0.005)
    assert chosen == "logistic" and "no evasion attack fits it" in reason
    # none is eligible: the pick is among all, and the candidate's own gates will say why
    chosen, reason = pick([_row("gbdt", 0.79, fair=False), _row("mlp", 0.77, fair=False)], 0.005)
    assert chosen == "gbdt" and "the candidate's own gates decide" in reason


@pytest.fixture(scope="module")
def matrix(sample_df, contract):
    from z4_assets.core.training._features import fit_features

    df = sample_df.head(6000)
    spec = fit_features(df, contract)
    x = spec.transform(df)
    y = (df[TARGET] == 1).to_numpy(dtype=np.int64)
    return x[:4000], y[:4000], x[4000:], y[4000:]


@pytest.mark.parametrize("name,hp", [("logistic", {}), ("gbdt", {"n_estimators": 60}),
                                     ("mlp", {"epochs": 2, "hidden_sizes": [16]})])
def test_each_family_exports_the_same_bytes_twice_and_its_export_scores_as_it_does(name, hp, matrix, tmp_path):
    from z4_assets.core.training._artifact import load_scorer

    xt, yt, xv, yv = matrix
    digests, files = [], []
    for i in range(2):
        fam = resolve_family(name, hp)
        model = fam.new()
        model.fit(xt, yt, xv, yv, dict(fam.hyperparameters))
        folder = tmp_path / f"{name}{i}"
        folder.mkdir()
        files.append(model.save(folder).read_bytes())
        digests.append(model.digest())
    assert files[0] == files[1] and digests[0] == digests[1]
    assert not files[0].startswith(b"\x80") and b"data.pkl" not in files[0]
    config = {"family": name, "artifact": model.artifact, "state_dict_sha256": digests[0], "attack": model.attack}
    scorer = load_scorer(folder, config)
    diff = np.abs(scorer.predict_proba(xv) - model.predict_proba(xv))
    assert diff.max() <= 1e-6, diff.max()


_EXPORT_IN_A_FRESH_PROCESS = """
import hashlib, sys
import numpy as np
from z4_assets.core.training._families import resolve_family
rng = np.random.default_rng(7)
x = rng.normal(size=(600, 5)).astype(np.float32)
y = (x[:, 0] + 0.5 * rng.normal(size=600) > 0).astype(np.int64)
fam = resolve_family(sys.argv[1], {"n_estimators": 5} if sys.argv[1] == "gbdt" else {})
model = fam.new()
model.fit(x[:400], y[:400], x[400:], y[400:], dict(fam.hyperparameters))
print(model.digest())
"""


@pytest.mark.parametrize("name", ["gbdt", "logistic"])
def test_the_onnx_export_does_not_depend_on_the_processs_hash_seed(name):
    """onnxmltools keeps opset (domain, version) pairs in a Python set: under PYTHONHASHSEED=20 it lists
    ai.onnx.ml before the default domain, under 0 after it. This made one CI rebuild of gbdt DIFFERENT
    with the same booster; canonical_onnx sorts opset_import."""
    import os
    import subprocess
    import sys

    digests = set()
    for seed in ("0", "20"):
        proc = subprocess.run([sys.executable, "-c", _EXPORT_IN_A_FRESH_PROCESS, name], capture_output=True,
                              text=True, env={**os.environ, "PYTHONHASHSEED": seed}, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        digests.add(proc.stdout.strip().splitlines()[-1])
    assert len(digests) == 1, digests


def test_snapped_lightgbm_thresholds_decide_exactly_as_the_original_on_float32_rows(matrix):
    import lightgbm as lgb

    from z4_assets.core.training._onnx_families import snap_thresholds

    xt, yt, xv, _ = matrix
    clf = lgb.LGBMClassifier(n_estimators=80, deterministic=True, force_row_wise=True, n_jobs=1, verbose=-1)
    clf.fit(xt, yt)
    snapped = lgb.Booster(model_str=snap_thresholds(clf.booster_.model_to_string()))
    for x in (xt, xv):
        assert np.array_equal(snapped.predict(x), clf.booster_.predict(x))


def test_a_tampered_or_pickled_model_folder_is_refused_before_scoring(matrix, tmp_path):
    from z4_assets.core.training._artifact import load_scorer

    xt, yt, xv, yv = matrix
    fam = resolve_family("logistic")
    model = fam.new()
    model.fit(xt, yt, xv, yv, dict(fam.hyperparameters))
    model.save(tmp_path)
    config = {"family": "logistic", "artifact": "model.onnx", "state_dict_sha256": model.digest()}
    load_scorer(tmp_path, config)                                # the untouched folder loads
    blob = bytearray((tmp_path / "model.onnx").read_bytes())
    blob[-5] ^= 0x01
    (tmp_path / "model.onnx").write_bytes(bytes(blob))
    with pytest.raises(Z4Error, match="differs from the recorded"):
        load_scorer(tmp_path, config)
    model.save(tmp_path)
    (tmp_path / "notes.json").write_bytes(pickle.dumps({"a": 1}))   # a pickle under an innocent name
    with pytest.raises(Z4Error, match="refusing a pickle file in the model folder: notes.json"):
        load_scorer(tmp_path, config)
    (tmp_path / "notes.json").unlink()
    with pytest.raises(Z4Error, match="not one of"):
        load_scorer(tmp_path, {**config, "artifact": "../model.onnx"})


def test_a_plug_in_that_saves_a_pickle_is_refused_at_training(matrix, tmp_path):
    from types import SimpleNamespace

    from z4_assets.core.training._fit import FitOutcome, save_model

    xt, yt, xv, yv = matrix
    fam = resolve_family("z4_assets_tests.plugin_model:pickles_itself")
    model = fam.new()
    model.fit(xt, yt, xv, yv, {})
    outcome = FitOutcome(None, fam, model, {}, "0" * 64, 0.0, {}, {})
    files = SimpleNamespace(dir=tmp_path)
    with pytest.raises(Z4Error, match="no pickle"):
        save_model(files, outcome, None)


def test_a_plug_in_missing_a_protocol_method_is_named():
    with pytest.raises(Z4Error, match="lacks .*digest"):
        resolve_family("z4_assets_tests.test_model_families:_incomplete")
    with pytest.raises(Z4Error, match="cannot import plug-in module"):
        resolve_family("no_such_package.mod:factory")


class _Incomplete:
    def fit(self, *a):
        return {}

    def predict_proba(self, x):
        return x

    def save(self, folder):
        return folder

    def load(self, path):
        return self


def _incomplete():
    return _Incomplete()


def _overfit_data(sample_df, contract, rows: int, noise: int, seed: int = 3):
    """Few rows and many pure-noise inputs: every family can memorise its training rows."""
    from z4_assets.core.training._features import fit_features

    df = sample_df.sample(rows, random_state=seed)
    spec = fit_features(df, contract)
    x = spec.transform(df)
    rng = np.random.default_rng(seed)
    x = np.hstack([x, rng.normal(size=(len(x), noise)).astype(np.float32)])
    y = (df[TARGET] == 1).to_numpy(dtype=np.int64)
    half = len(x) // 2
    return x[:half], y[:half], x[half:], y[half:]


@pytest.mark.parametrize("name,hp,noise", [
    ("logistic", {"C": 1e6, "max_iter": 5000}, 400),
    ("gbdt", {"n_estimators": 400, "num_leaves": 255, "min_child_samples": 1, "learning_rate": 0.3}, 0),
    ("mlp", {"epochs": 200, "hidden_sizes": [256, 256], "learning_rate": 3e-3, "weight_decay": 0.0,
             "batch_size": 64}, 0),
])
def test_an_overfitted_model_of_each_family_fails_the_membership_gate(name, hp, noise, sample_df, contract, policy):
    from z4_assets.core.security._evaluate import membership_gate
    from z4_assets.core.security._privacy import membership_inference

    xt, yt, xo, yo = _overfit_data(sample_df, contract, 2400, noise)
    fam = resolve_family(name, hp)
    model = fam.new()
    # validated on its own training rows: the mlp's best epoch is then its most memorised one
    model.fit(xt, yt, xt[:300], yt[:300], dict(fam.hyperparameters))
    priv = membership_inference(model, xt, yt, xo, yo, policy.security.membership, 4242)
    gate = membership_gate(priv, policy.security.membership)
    assert not gate.passed and gate.sufficient, (name, gate.summary, priv)
    assert priv["attack_auc"] > policy.security.membership.max_attack_auc


def test_evasion_fits_the_family_and_refuses_one_it_cannot_attack(matrix, sample_df, contract, policy):
    from z4_assets.core.security._evaluate import evasion_gate
    from z4_assets.core.security._evasion import feature_bounds, robustness_curve
    from z4_assets.core.training._features import fit_features

    xt, yt, xv, yv = matrix
    spec = fit_features(sample_df.head(6000), contract)
    bounds = feature_bounds(spec, contract, sample_df.head(6000))
    rules = policy.security.evasion.model_copy(update={"sample_rows": 300, "decision_rows": 40, "min_rows": 20})
    attacks = {}
    for name, hp in (("logistic", {}), ("gbdt", {"n_estimators": 60}),
                     ("z4_assets_tests.plugin_model:unattackable", {})):
        fam = resolve_family(name, hp)
        model = fam.new()
        model.fit(xt, yt, xv, yv, dict(fam.hyperparameters))
        report = robustness_curve(model, xv[:300], yv[:300], bounds, rules, 7)
        attacks[name] = (report.get("gate_attack"), evasion_gate(report, rules))
    assert attacks["logistic"][0] == "pgd" and attacks["gbdt"][0] == "hopskipjump"
    refused = attacks["z4_assets_tests.plugin_model:unattackable"][1]
    assert not refused.passed and refused.sufficient and "REFUSED" in refused.summary
