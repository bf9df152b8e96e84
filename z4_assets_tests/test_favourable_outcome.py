"""Fairness direction: the dataset config declares which decision is favourable to the person;
`z4 snapshot add --dataset-config` refuses a config without one (one line, nothing written); parity
ratios are computed on that outcome, so an income-like dataset whose positive class is favourable
gets fairlearn's ratio, not the ratio of the complements."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from z4_assets.cli import main
from z4_assets.core.fairness._reference import reference_disparities
from z4_assets_tests.conftest import CONVERGED_TRAIN, DATASET, SAMPLE_CONTRACT, SAMPLE_DATASET_CONFIG, check_verdicts, run_factory
from z4_assets_tests.small_credit import LOANAPP, loanapp_files


def test_snapshot_add_refuses_a_config_without_a_favourable_outcome(tmp_path, sample_df, z3_root, monkeypatch,
                                                                     capsys):
    data = tmp_path / "data.parquet"
    sample_df.head(300).to_parquet(data, index=False)
    doc = yaml.safe_load(SAMPLE_DATASET_CONFIG.read_text())
    assert doc["favourable_outcome"] == "not_selected", "the bundled sample declares it"
    monkeypatch.setenv("Z4_Z3_ROOT", str(z3_root))
    cases = {"none.yaml": ({k: v for k, v in doc.items() if k != "favourable_outcome"},
                           "declares no favourable_outcome: add `favourable_outcome: not_selected`"),
             "not_a_label.yaml": ({**doc, "favourable_outcome": 7}, "neither selected, not_selected nor a value"),
             "typo.yaml": ({**doc, "favourable_outcome": "notselected"}, "neither selected, not_selected")}
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        path.write_text(yaml.safe_dump(content))
        code = main(["snapshot", "add", "--dataset-id", DATASET, "--contract", str(SAMPLE_CONTRACT),
                     "--dataset-config", str(path), str(data)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.count("\n") == 0 and err.startswith(f"z4: error: {path}:"), err
        assert expected in err, err
    assert [p for p in z3_root.rglob("*") if p.is_file()] == [], "nothing half-written"
    ok = tmp_path / "label.yaml"
    ok.write_text(yaml.safe_dump({**doc, "favourable_outcome": 0}))     # the target value "no default"
    assert main(["snapshot", "add", "--dataset-id", DATASET, "--contract", str(SAMPLE_CONTRACT),
                 "--dataset-config", str(ok), str(data)]) == 0


def test_a_target_value_means_selected_when_it_is_the_positive_class(contract):
    from z4_assets.core.dataset_config import DatasetConfig

    base = yaml.safe_load(SAMPLE_DATASET_CONFIG.read_text())
    decide = {v: DatasetConfig(**{**base, "favourable_outcome": v}).favourable_decision(contract)
              for v in (0, 1, "selected", "not_selected")}
    assert decide == {0: "not_selected", 1: "selected", "selected": "selected", "not_selected": "not_selected"}


def _income_like(n: int = 20000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Group F is selected (predicted high income) at 0.10, group M at 0.32: the favourable rates' ratio is
    0.31; the ratio of the complements (0.68 / 0.90) is 0.76 and passes the four-fifths rule."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    rate = np.where(sex == "F", 0.10, 0.32)
    y = (rng.random(n) < rate).astype(int)
    score = np.clip(np.where(y == 1, 0.75, 0.25) + rng.normal(0, 0.1, n), 0, 1)
    flip = rng.random(n) < 0.02
    score[flip] = 1 - score[flip]
    return pd.DataFrame({"sex": sex}), y, score


def test_parity_ratio_is_on_the_favourable_outcome(policy):
    from z4_assets.core.fairness._groups import Grouping
    from z4_assets.core.fairness._report import assess, overall_metrics

    df, y, score = _income_like()
    codes = (df["sex"] == "M").to_numpy().astype(np.int64)
    grouping = Grouping("sex", ("sex",), ["sex=F", "sex=M"], codes, {})
    fairlearn = reference_disparities(y, score, 0.5, df["sex"])["demographic_parity_ratio"]
    ratios = {}
    for fav in ("selected", "not_selected"):
        rules = policy.fairness.model_copy(update={"favourable_outcome": fav, "bootstrap_resamples": 50})
        out = assess(grouping, y, score, 0.5, rules, [1, 2], overall_metrics(y, score, 0.5))
        ratios[fav] = out["disparities"]["demographic_parity_ratio"]["value"]
    assert abs(ratios["selected"] - fairlearn) < 1e-9 and ratios["selected"] < 0.4
    assert ratios["not_selected"] > 0.7, "the complements' ratio: what the issue saw reported"


def test_a_positive_favourable_dataset_is_gated_on_its_favourable_rate(tmp_path, z3_root, factory_resources):
    """loanapp predicting `approve`, favourable_outcome 1 (approved): the factory's parity ratio per
    attribute is the lowest / highest approval (selection) rate of its groups, not the ratio of the
    rejection rates."""
    import json

    from z4_assets.assets import fairness_report, hygiene_report, trained_model, z3_snapshot
    from z4_assets.core.z3 import add_snapshot

    contract, data, config = loanapp_files(tmp_path / "d", target="approve", favourable=1)
    add_snapshot(z3_root, LOANAPP, contract, data, dataset_config=config)
    result = run_factory(factory_resources, train=CONVERGED_TRAIN,
                         assets=[z3_snapshot, hygiene_report, trained_model, fairness_report])
    verdicts = check_verdicts(result)
    assert verdicts["operating_point"], verdicts
    report_path = result.asset_materializations_for_node("fairness_report")[0].metadata["file_report"].value
    report = json.loads(open(report_path).read())
    assert report["selection"]["favourable_outcome"] == "selected"
    assert report["selection"]["favourable_outcome_source"] == "dataset config favourable_outcome: 1"
    checked = 0
    for attr, a in report["attributes"].items():
        if not a["assessable"] or len([g for g in a["groups"].values() if g["status"] == "ok"]) != 2:
            continue
        rates = [g["selection_rate"] for g in a["groups"].values() if g["status"] == "ok"]
        ratio = a["disparities"]["demographic_parity_ratio"]["value"]
        assert abs(ratio - min(rates) / max(rates)) < 1e-9, (attr, ratio, rates)
        complement = (1 - max(rates)) / (1 - min(rates))
        assert abs(ratio - complement) > 0.01, "the rates must tell the two directions apart"
        checked += 1
    assert checked >= 1, {k: a.get("reason") for k, a in report["attributes"].items()}
