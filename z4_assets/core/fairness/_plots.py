"""One PNG per sensitive attribute: per-group bars with bootstrap intervals (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

from z4_assets.core.plots import figure, save_png

PLOTTED = (("auc", "AUC"), ("ks", "KS"), ("selection_rate", "selection rate"),
           ("tpr", "TPR"), ("fpr", "FPR"), ("precision", "precision"))
DPI = 90


def plot_attribute(name: str, assessed: dict, files, confidence: float) -> Path:
    """Bars for every group with enough data, each with its CI; insufficient groups are listed."""
    ordered = [(g, assessed["groups"][g]) for g in assessed.get("order", assessed["groups"])]
    groups = {g: e for g, e in ordered if e["status"] == "ok"}
    skipped = [f"{g} (n={e['count']})" for g, e in ordered if e["status"] != "ok"]
    labels = [g.split("=", 1)[1] if "=" in g else g for g in groups]
    with figure(2, 3, figsize=(12, 6.5), constrained_layout=True) as (fig, axes):
        _draw(fig, axes, name, groups, labels, skipped, confidence)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        return save_png(fig, files.file(f"fairness_{safe}.png"), DPI)


def _draw(fig, axes, name: str, groups: dict, labels: list[str], skipped: list[str], confidence: float) -> None:
    for ax, (metric, title) in zip(axes.flat, PLOTTED):
        vals = [e[metric] if e[metric] is not None else 0.0 for e in groups.values()]
        lo = [v - (e[f"{metric}_ci"][0] if e[f"{metric}_ci"][0] is not None else v) for v, e in zip(vals, groups.values())]
        hi = [(e[f"{metric}_ci"][1] if e[f"{metric}_ci"][1] is not None else v) - v for v, e in zip(vals, groups.values())]
        ax.bar(range(len(vals)), vals, yerr=[[max(x, 0) for x in lo], [max(x, 0) for x in hi]],
               capsize=4, color="#4C72B0")
        ax.set_xticks(range(len(vals)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(title)
        ax.set_ylim(0, 1)
    note = f"{name}: per-group metrics on the test split, bars = {confidence:.0%} bootstrap intervals"
    if skipped:
        note += "\ninsufficient data, not plotted: " + ", ".join(skipped)
    fig.suptitle(note, fontsize=9)
