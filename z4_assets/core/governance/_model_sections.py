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
    lo, hi = m.get("ci") or (None, None)
    return f"{m['point']:.4f}" + (f" [{lo:.4f}, {hi:.4f}]" if lo is not None else "")


def challengers(mc: dict) -> list[str]:
    table = mc.get("challengers")
    if not table:
        return []
    lines = ["", f"Challenger table (every family on the same split, test split, {table['confidence']:.0%} "
             "intervals):", "",
             "| family | AUC | KS | largest selection-rate gap | evasion accuracy drop | digest |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in table["rows"]:
        gap = row.get("selection_rate_gap") or {}
        ev = row.get("evasion") or {}
        drop = (f"{ev['accuracy_drop']:.4f} ({ev['attack']}, {ev['rows']} rows)" if ev.get("accuracy_drop") is not None
                else "REFUSED: " + text(ev.get("refused") or "n/a"))
        lines.append(f"| {text(row['family'])}{' (candidate)' if row['family'] == table['chosen'] else ''} | "
                     f"{_ci(row['auc'])} | {_ci(row['ks'])} | "
                     f"{(_ci(gap) + ' ' + text(gap.get('attribute', ''))) if gap else 'n/a'} | "
                     f"{drop} | "
                     f"`{row['digest'][:12]}` |")
    return lines + ["", f"**Choice:** {text(table['chosen'])}. {text(table['reason'])}"]
