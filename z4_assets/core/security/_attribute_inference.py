"""Attribute inference (tabular model inversion): does the model's output help an attacker guess a
sensitive attribute the model was never given?

For each sensitive attribute the contract keeps out of the model (`use_as_feature: false`), two
attacks are fitted on one half of a seeded sample of the training rows (the people whose data the
model learned from) and scored on the other half:

- ART's `AttributeInferenceBlackBox`: the attacker knows the row's other features AND the model's
  score (P(positive)), gradient-boosting attack model;
- ART's `AttributeInferenceBaseline`: the same attack model from the other features alone.

The gain is accuracy(with model) - accuracy(baseline): what the model's output adds to what the
attacker could infer anyway. The gate compares the largest gain over the attributes with the policy.
A numeric attribute is attacked on its contract bins (or quantile bands); a sample with fewer eval
rows than the policy minimum, or a single class, is insufficient evidence, never a measured value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract


def attacked_attributes(contract: Contract) -> list[str]:
    """The sensitive attributes kept out of the model that the snapshot holds."""
    return [a for a, s in contract.sensitive.items() if not s.use_as_feature and a in contract.columns]


def attribute_codes(df: pd.DataFrame, contract: Contract, attr: str, bands: int) -> tuple[np.ndarray, list[str]]:
    """One integer class per row (missing values are a class of their own) and the class names."""
    col = df[attr]
    bins = contract.sensitive[attr].bins
    if not bins and not contract.is_categorical(attr):
        v = pd.to_numeric(col, errors="coerce").astype("float64")
        edges = np.unique(np.nanquantile(v, np.linspace(0, 1, bands + 1))) if v.notna().any() else np.array([])
        bins = edges.tolist() if len(edges) > 1 else None
    if bins:
        v = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
        edges = np.sort(np.asarray(bins, dtype="float64"))
        idx = np.searchsorted(edges, v, side="right").astype(float)
        idx[np.isnan(v)] = -1
        labels = idx.astype(int)
        names = {-1: "missing", 0: f"<{edges[0]:g}", len(edges): f">={edges[-1]:g}"}
        names.update({i: f"[{lo:g},{hi:g})" for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]), start=1)})
    else:
        s = col.astype("string").fillna("missing")
        cats = sorted(set(s))
        labels = s.map({c: i for i, c in enumerate(cats)}).to_numpy(dtype=int)
        names = dict(enumerate(cats))
    present = np.unique(labels)
    remap = {c: i for i, c in enumerate(present)}
    return np.array([remap[c] for c in labels], dtype=int), [str(names[c]) for c in present]


def _score_model(model, n_features: int):
    """The candidate as ART sees it: input = its features plus the attacked code in the last column
    (ART reads the attacked feature from x; the model never sees it), output = P(positive). A black box
    over the factory's scorer, so every family (torch, ONNX, a plug-in) is attacked the same way."""
    from art.estimators.regression.blackbox import BlackBoxRegressor

    from z4_assets.core.security._art_model import proba

    def predict(x: np.ndarray) -> np.ndarray:
        return proba(model, np.asarray(x, dtype=np.float32)[:, :n_features]).reshape(-1)

    return BlackBoxRegressor(predict, input_shape=(n_features + 1,))


def _attack(model, x: np.ndarray, codes: np.ndarray, fit: np.ndarray, ev: np.ndarray, seed: int) -> dict:
    from art.attacks.inference.attribute_inference import AttributeInferenceBaseline, AttributeInferenceBlackBox

    from z4_assets.core.security._art_model import proba

    n = x.shape[1]
    full = np.ascontiguousarray(np.c_[x, codes.astype(np.float32)], dtype=np.float32)
    np.random.seed(seed)  # ART's random-forest attack models draw from numpy's global RNG
    with_model = AttributeInferenceBlackBox(_score_model(model, n), attack_model_type="rf", attack_feature=n)
    with_model.fit(full[fit])
    score = proba(model, x[ev]).reshape(-1, 1).astype(np.float32)
    guessed = with_model.infer(full[ev][:, :n], pred=score)
    np.random.seed(seed)
    baseline = AttributeInferenceBaseline(attack_model_type="rf", attack_feature=n)
    baseline.fit(full[fit])
    guessed_base = baseline.infer(full[ev][:, :n])
    truth = codes[ev]
    majority = float(np.bincount(codes[fit]).argmax())
    return {"accuracy_with_model": round(float((guessed.reshape(-1) == truth).mean()), 6),
            "accuracy_baseline": round(float((guessed_base.reshape(-1) == truth).mean()), 6),
            "majority_class_accuracy": round(float((truth == majority).mean()), 6)}


def attribute_inference(model, spec, contract: Contract, df: pd.DataFrame, train_rows: np.ndarray,
                        cfg, seed: int) -> dict:
    """cfg = the policy's security.attribute_inference section. Per attacked attribute: both
    accuracies, the gain, the rows; the largest gain over the attributes with enough evidence."""
    import time

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(train_rows, int(cfg.sample_rows), replace=False)) \
        if len(train_rows) > int(cfg.sample_rows) else np.sort(train_rows)
    order = rng.permutation(len(rows))
    fit, ev = np.sort(order[: len(rows) // 2]), np.sort(order[len(rows) // 2:])
    sample = df.iloc[rows]
    x = np.ascontiguousarray(spec.transform(sample), dtype=np.float32)
    out: dict = {"attack": "ART AttributeInferenceBlackBox(model score + other features, rf) vs "
                           "AttributeInferenceBaseline(other features, rf)",
                 "rows_sampled": int(len(rows)), "attack_fit_rows": int(len(fit)), "attack_eval_rows": int(len(ev)),
                 "per_attribute": {}}
    for attr in attacked_attributes(contract):
        codes, classes = attribute_codes(sample, contract, attr, int(cfg.bands))
        entry: dict = {}
        if len(classes) < 2 or len(np.unique(codes[fit])) < 2:
            entry["note"] = "one class in the sample: nothing to infer, not measured"
        elif len(ev) < int(cfg.min_eval_rows):
            entry["note"] = f"{len(ev)} eval rows; needs >= {int(cfg.min_eval_rows)}: not measured"
        else:
            entry.update(_attack(model, x, codes, fit, ev, seed))
            entry["gain"] = round(entry["accuracy_with_model"] - entry["accuracy_baseline"], 6)
        out["per_attribute"][attr] = {**entry, "classes": classes}  # the figures first: the card cuts long rows
    gains = [e["gain"] for e in out["per_attribute"].values() if "gain" in e]
    out["max_gain"] = max(gains) if gains else None
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out


def attribute_inference_gate(report: dict, cfg):
    """The largest gain over the attacked attributes against the policy; no attribute with enough
    evidence is insufficient (an attribute kept out of the model that could not be attacked is named)."""
    from z4_assets.core.stages import SECURITY

    spec, per = SECURITY.gate.attribute_inference_gain, report["per_attribute"]
    details = {"per_attribute": {a: {k: e.get(k) for k in ("accuracy_with_model", "accuracy_baseline", "gain", "note")
                                     if e.get(k) is not None} for a, e in per.items()},
               "attack_eval_rows": report["attack_eval_rows"]}
    if not per:
        return spec.verdict(True, "no attribute", "<=", cfg.max_accuracy_gain,
                            "ok: no sensitive attribute is kept out of the model: nothing to infer", details)
    unmeasured = [a for a, e in per.items() if "gain" not in e]
    if unmeasured:
        return spec.insufficient(f"attribute inference not measured for {', '.join(unmeasured)} "
                                 f"({per[unmeasured[0]]['note']})", "<=", cfg.max_accuracy_gain,
                                 cfg.insufficient_evidence_blocks, details)
    worst = max(per, key=lambda a: per[a]["gain"])
    return spec.compare(report["max_gain"], "<=", cfg.max_accuracy_gain,
                        f"largest attribute-inference accuracy gain from the model's score ({worst}: "
                        f"{per[worst]['accuracy_with_model']:.3f} with vs {per[worst]['accuracy_baseline']:.3f} "
                        f"without)", details)
