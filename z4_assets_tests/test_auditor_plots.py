"""Plots an auditor can read: the fairness gates' thresholds drawn with each group's interval, drift bars
that show a zero, legible fonts, and every plot naming its snapshot and run."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from z4_assets.core.fairness import _plots as fairness_plot
from z4_assets.core.hygiene import _drift_plot as drift_plot
from z4_assets.core.plots import caption
from z4_assets.core.run_folder import RunFolder
from z4_assets_tests.test_plots import shifted  # noqa: F401 (fixture: a baseline and a drifted copy)


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _count(png: bytes, hex_colour: str, tol: int = 12) -> int:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(_pixels(png).astype(int) - rgb).max(axis=-1) <= tol).sum())


def _group(auc, sr, tpr, fpr, ks=0.4):
    e = {"status": "ok", "count": 500, "auc": auc, "ks": ks, "selection_rate": sr, "tpr": tpr, "fpr": fpr,
         "precision": 0.5}
    e.update({f"{m}_ci": [e[m] - 0.04, e[m] + 0.04] for m in ("auc", "ks", "selection_rate", "tpr", "fpr", "precision")})
    return e


ASSESSED = {"groups": {"SEX=1": _group(0.78, 0.30, 0.60, 0.20), "SEX=2": _group(0.70, 0.22, 0.48, 0.12)}}


def test_threshold_lines_sit_where_a_group_would_breach_each_gate(policy):
    rules = policy.fairness  # auc_diff_max 0.10, dp diff 0.10, ratio 0.80, eo 0.10, favourable not_selected
    lines = fairness_plot.threshold_lines(ASSESSED["groups"], rules)
    assert lines["auc"][0][0] == pytest.approx(0.78 - rules.auc_diff_max)
    assert lines["tpr"][0][0] == pytest.approx(0.60 - rules.equalized_odds_diff_max)
    assert lines["fpr"][0][0] == pytest.approx(0.12 + rules.equalized_odds_diff_max)  # a high FPR breaches
    (gap, gap_label), (ratio, ratio_label) = lines["selection_rate"]
    assert gap == pytest.approx(0.30 - rules.demographic_parity_diff_max)
    # favourable = not selected: lowest/highest of (1 - rate) >= 0.8  <=>  rate <= 1 - 0.8 * (1 - lowest rate)
    assert ratio == pytest.approx(1 - rules.demographic_parity_ratio_min * (1 - 0.22)) and "above" in ratio_label
    selected = fairness_plot.threshold_lines(ASSESSED["groups"], rules.model_copy(
        update={"favourable_outcome": "selected"}))
    assert selected["selection_rate"][1][0] == pytest.approx(rules.demographic_parity_ratio_min * 0.30)
    assert "precision" not in lines  # no gate bounds it
    one = {"SEX=1": ASSESSED["groups"]["SEX=1"]}
    assert fairness_plot.threshold_lines(one, rules) == {}  # one group: no gap, no line drawn from nothing


def test_the_fairness_png_carries_its_threshold_lines_in_their_own_colour(policy, tmp_path):
    folder = RunFolder(tmp_path, "run-1").stage("fairness")
    with_lines = fairness_plot.plot_attribute("SEX", ASSESSED, folder, 0.95, policy.fairness, True,
                                              caption("d@s", "run-1")).read_bytes()
    without = fairness_plot.plot_attribute("SEX", ASSESSED, RunFolder(tmp_path, "run-2").stage("fairness"),
                                           0.95).read_bytes()
    drawn = _count(with_lines, fairness_plot.THRESHOLD_COLOUR)
    assert _count(without, fairness_plot.THRESHOLD_COLOUR) == 0
    assert drawn > 5 * 400, drawn  # five panels, a line across each (and the legends' samples)


def test_a_zero_psi_bar_is_drawn_and_labels_are_legible(tmp_path, monkeypatch):
    data = drift_plot.figure_data({"a": {"psi": 0.0, "kl": 0.0}, "b": {"psi": 0.0, "kl": 0.0}}, {},
                                  psi_max=0.25, kl_max=0.25, baseline_label="d@1")
    data["caption"] = caption("d@2", "run-9")
    colour = drift_plot._COLOURS[drift_plot.BASELINE]
    shown = drift_plot.render(data, tmp_path / "shown.png").read_bytes()
    monkeypatch.setattr(drift_plot, "MIN_BAR", 0.0)  # what the plot did before: a zero is a bar of no width
    hidden = drift_plot.render(data, tmp_path / "hidden.png").read_bytes()
    assert _count(shown, colour) > _count(hidden, colour) + 20
    px = {k: size * drift_plot.DPI / 72 for k, size in drift_plot.FONT.items()}  # points at the PNG's dpi
    assert min(px.values()) >= 11, px  # was 7 pt at 72 dpi: labels about 6 px high


def test_every_plot_names_its_snapshot_and_run(shifted, contract, policy, tmp_path):
    files = RunFolder(tmp_path, "run-42").stage("hygiene")
    accepted = shifted["accepted"]
    gate = next(g for g in accepted.gates if g.name == "drift")
    out = drift_plot.write_drift_plot(shifted["base"], contract, accepted.split, gate.details, policy.hygiene,
                                      files, caption("taiwan_credit_default@s1", "run-42"))
    data = json.loads(out["drift_data"].read_text())
    assert data["caption"] == "snapshot taiwan_credit_default@s1 | run run-42"
