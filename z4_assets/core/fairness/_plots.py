"""One PNG per sensitive attribute: per-group bars with bootstrap intervals and the gates' thresholds
(matplotlib, Agg).

The fairness gates bound the gap between groups, so each panel draws where a group would breach:
`best group - <gap max>` (AUC, KS, selection rate, TPR, FPR), and for the selection rate the
four-fifths line of the parity ratio. A group beyond a line fails its gate (on the point estimate).
"""

from __future__ import annotations

from pathlib import Path

from z4_assets.core.plots import figure, save_png

PLOTTED = (("auc", "AUC"), ("ks", "KS"), ("selection_rate", "selection rate"),
           ("tpr", "TPR"), ("fpr", "FPR"), ("precision", "precision"))
DPI = 90
PALETTE = 64  # a palette PNG: the figure stays under the inline limit (core/plots.png_bytes)
THRESHOLD_COLOUR = "#D62728"   # only the gate lines use it (a test finds them in the PNG's pixels)
# panel metric -> the policy key bounding its gap between groups
GAP_MAX = {"auc": "auc_diff_max", "ks": "ks_diff_max", "selection_rate": "demographic_parity_diff_max",
           "tpr": "equalized_odds_diff_max", "fpr": "equalized_odds_diff_max"}


def threshold_lines(groups: dict, rules) -> dict[str, list[tuple[float, str]]]:
    """metric -> [(y, label)]: where a group's point estimate would breach a fairness gate, given the others."""
    lines: dict[str, list[tuple[float, str]]] = {}
    for metric, key in GAP_MAX.items():
        values = [e[metric] for e in groups.values() if e.get(metric) is not None]
        if len(values) < 2:
            continue
        gap = float(getattr(rules, key))
        lines[metric] = [(max(values) - gap, f"{key} {gap:g}: below breaches")]
        if metric == "fpr":  # a high FPR breaches too: the gap is counted from the lowest group
            lines[metric] = [(min(values) + gap, f"{key} {gap:g}: above breaches")]
    rates = [e["selection_rate"] for e in groups.values() if e.get("selection_rate") is not None]
    if len(rates) >= 2:
        ratio = float(rules.demographic_parity_ratio_min)
        if rules.favourable_outcome == "not_selected":  # favourable rate 1 - s: lowest / highest >= ratio
            y, side = 1.0 - ratio * (1.0 - min(rates)), "above"
        else:
            y, side = ratio * max(rates), "below"
        lines["selection_rate"].append((y, f"demographic_parity_ratio_min {ratio:g}: {side} breaches"))
    return lines


def plot_attribute(name: str, assessed: dict, files, confidence: float, rules=None, gated: bool = True,
                   caption: str = "") -> Path:
    """Bars for every group with enough data, each with its CI, and the gate lines (RULES: the fairness
    policy); insufficient groups are listed. GATED: the attribute is in the gates' scope."""
    ordered = [(g, assessed["groups"][g]) for g in assessed.get("order", assessed["groups"])]
    groups = {g: e for g, e in ordered if e["status"] == "ok"}
    skipped = [f"{g} (n={e['count']})" for g, e in ordered if e["status"] != "ok"]
    labels = [g.split("=", 1)[1] if "=" in g else g for g in groups]
    lines = threshold_lines(groups, rules) if rules is not None else {}
    with figure(2, 3, figsize=(12, 7), constrained_layout=True) as (fig, axes):
        _draw(axes, groups, labels, lines)
        note = (f"{name}: per-group metrics on the test split, bars = point estimates, whiskers = {confidence:.0%} "
                "bootstrap intervals, red lines = fairness gate thresholds")
        if not gated:
            note += "\n(this attribute is reported, not gated: the lines show where it would breach)"
        if skipped:
            note += "\ninsufficient data, not plotted: " + ", ".join(skipped)
        fig.suptitle(note + (f"\n{caption}" if caption else ""), fontsize=9)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        return save_png(fig, files.file(f"fairness_{safe}.png"), DPI, PALETTE)


def _draw(axes, groups: dict, labels: list[str], lines: dict) -> None:
    for ax, (metric, title) in zip(axes.flat, PLOTTED):
        vals = [e[metric] if e[metric] is not None else 0.0 for e in groups.values()]
        lo = [v - (e[f"{metric}_ci"][0] if e[f"{metric}_ci"][0] is not None else v) for v, e in zip(vals, groups.values())]
        hi = [(e[f"{metric}_ci"][1] if e[f"{metric}_ci"][1] is not None else v) - v for v, e in zip(vals, groups.values())]
        ax.bar(range(len(vals)), vals, yerr=[[max(x, 0) for x in lo], [max(x, 0) for x in hi]],
               capsize=4, color="#4C72B0", ecolor="#222222")
        for (y, label), style in zip(lines.get(metric, []), ("--", ":")):
            ax.axhline(y, color=THRESHOLD_COLOUR, ls=style, lw=1.6, label=label)
        if lines.get(metric):
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xticks(range(len(vals)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(title + ("" if metric in GAP_MAX else " (not gated)"))
        ax.set_ylim(0, 1)
