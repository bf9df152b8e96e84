"""The model card's model sections that depend on the family: details, the logistic scorecard, and
the challenger table (families trained on the same split, and why the policy picked the candidate)."""

from __future__ import annotations

from z4_assets.core.governance._escape import code, text


def details(ev) -> list[str]:
    c, mc = ev.get("dataset_config"), ev.get("model_config")
    family = mc.get("family", "mlp")
    if family == "mlp":
        what = (f"mlp (torch) with hidden layers {mc.get('hidden_sizes')}, {mc['inputs']} inputs, "
                f"{mc['outputs']} logits, torch {mc.get('torch')}")
    elif family == "logistic":
        what = f"logistic regression (scikit-learn, lbfgs), {mc['inputs']} inputs: the scorecard below"
    elif family == "gbdt":
        what = f"gradient-boosted trees (LightGBM), {mc['inputs']} inputs, {mc.get('best_epoch')} trees"
    else:
        what = f"plug-in {code(family)}, {mc['inputs']} inputs"
    code_rec = mc.get("code") or {}
    lines = [f"- Model: {code(c['model_name'])}, {what}",
             f"- Artifact: `model/{mc.get('artifact', 'model.safetensors')}` "
             f"({(mc.get('scoring') or {}).get('runtime', 'safetensors+torch')}; no pickle); "
             f"model digest `{mc['state_dict_sha256']}` ({text(mc.get('digest_of', 'state_dict tensors'))})",
             f"- Family code: {code(code_rec.get('factory', family))} sha256 `{code_rec.get('code_sha256', 'unknown')}`",
             f"- Best epoch / iterations: {mc.get('best_epoch')}",
             f"- Target: {code(mc['target']['column'])} (positive = {text(mc['target']['positive'])})",
             f"- Hyperparameters: {text(mc['hyperparameters'])}"]
    lines += [f"- Owner: {text(c['owner'])}"] if c.get("owner") else []
    return lines + scorecard(mc) + challengers(mc)


def scorecard(mc: dict) -> list[str]:
    """The logistic model's coefficients, largest effect first, in the scaled feature space."""
    sc = mc.get("scorecard")
    if not sc:
        return []
    rows = sorted(zip(sc["features"], sc["coefficients"]), key=lambda r: -abs(r[1]))
    return ["", "Scorecard (logistic coefficients on standardised inputs; log-odds of the positive class per "
            "standard deviation, or for a one-hot category against the others):", "",
            "| feature | coefficient | direction |", "| --- | --- | --- |",
            *(f"| {text(f)} | {w:+.6f} | {'raises' if w > 0 else 'lowers'} the score |" for f, w in rows),
            f"| (intercept) | {sc['intercept']:+.6f} | |"]


def _ci(m: dict) -> str:
    if m.get("point") is None:
        return "n/a"
    lo, hi = m.get("ci") or (None, None)
    return f"{m['point']:.4f}" + (f" [{lo:.4f}, {hi:.4f}]" if lo is not None and hi is not None else "")


def _drop(ev: dict) -> str:
    if ev.get("accuracy_drop") is None:
        return "REFUSED: " + text(ev.get("refused") or "n/a")
    return (_ci({"point": ev["accuracy_drop"], "ci": ev.get("accuracy_drop_ci")})
            + f" ({ev['attack']}, {ev['rows']} rows)")


def _fairness(f: dict) -> str:
    if not f:
        return "n/a"
    failed = f.get("failed") or []
    return ("pass" if f.get("passed") else "FAIL: " + ", ".join(text(g) for g in failed)) + \
        f" ({len(f.get('gates') or {})} gates)"


def _settings(hp: dict | None) -> str:
    return text(", ".join(f"{k}={v}" for k, v in sorted(hp.items()))) if hp else "its own defaults"


def challengers(mc: dict) -> list[str]:
    table = mc.get("challengers")
    if not table:
        return []
    names = [row["family"] for row in table["rows"]]
    label = {n: text(n) + (" (candidate)" if n == table["chosen"] else "") for n in names}
    lines = ["", f"Challenger table (every family on the same split, test split, {table['confidence']:.0%} "
             "intervals):", "",
             "| family | AUC | KS | fairness gates | evasion accuracy drop | digest |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in table["rows"]:
        lines.append(f"| {label[row['family']]} | {_ci(row['auc'])} | {_ci(row['ks'])} | "
                     f"{_fairness(row.get('fairness') or {})} | {_drop(row.get('evasion') or {})} | "
                     f"`{row['digest'][:12]}` |")
    gaps = list(dict.fromkeys(k for row in table["rows"] for k in ((row.get("fairness") or {}).get("gaps") or {})))
    if gaps:
        lines += ["", "Fairness gaps of each challenger (the fairness stage's report on the test split, "
                  "bootstrap intervals):", "",
                  "| attribute.gap | " + " | ".join(label[n] for n in names) + " |",
                  "| --- |" + " --- |" * len(names)]
        for key in gaps:
            cells = [_ci(((row.get("fairness") or {}).get("gaps") or {}).get(key) or {}) for row in table["rows"]]
            lines.append(f"| {text(key)} | " + " | ".join(cells) + " |")
    lines += ["", "Hyperparameters:"] + [f"- {text(row['family'])}: {_settings(row.get('hyperparameters'))}"
                                          for row in table["rows"]]
    return lines + ["", f"**Choice:** {text(table['chosen'])}. {text(table['reason'])}"]
