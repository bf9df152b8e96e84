"""Drift per feature as a picture: PSI against the baseline (gated) and test against train (shown only),
and below it, for every flagged feature, the reference and current distribution over the gate's bins.

A reviewer sees at a glance which features moved, how far from the policy threshold they are, and
where their values went (a tail bin, an unseen category). The figure data is written next to the
PNG, so what is drawn can be checked without reading pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from z4_assets.core.hygiene import _drift as drift
from z4_assets.core.contract import Contract
from z4_assets.core.files import atomic_write_json
from z4_assets.core.plots import figure, save_png
from z4_assets.core.split import TEST, TRAIN

DPI = 90  # with the fonts below: every text at least 12 px high (10 pt); a palette PNG under the inline limit
PALETTE = 64
FONT = {"label": 10, "tick": 10, "title": 10, "legend": 10}
MIN_BAR = 0.006  # a bar of value 0 is drawn this share of the axis long, so that it is seen (its label says 0)
MAX_FEATURES = 30  # the most drifted ones; the rest are counted in the title
MAX_PANELS = 6  # distribution panels (flagged features, most drifted first); the rest are counted
BASELINE, SPLIT = "snapshot vs baseline", "test vs train split"
_COLOURS, _FLAG = {BASELINE: "#4C72B0", SPLIT: "#9AA5B1"}, "#C44E52"
_PANEL = (4.6, 2.8)  # inches per distribution panel, two panels a row
_DEFINITION = {"factory": "factory definition", "evidently": "Evidently 0.7.23 definition"}


def split_drift(df: pd.DataFrame, contract: Contract, split: np.ndarray, bins: int,
                method: str = "factory") -> dict[str, dict]:
    """PSI and KL per feature of the test split against the training split (METHOD's definition)."""
    train, test = df[split == TRAIN], df[split == TEST]
    if train.empty or test.empty:
        return {}
    profile = drift.build_profile(train, contract, bins)
    if method == "evidently":
        from z4_assets.core.hygiene import _drift_evidently

        per = _drift_evidently.drift_against(drift.reference_counts(train, contract), profile, test, contract)
    else:
        per = drift.drift_against(profile, test)
    return {c: v for c, v in per.items() if v["psi"] is not None}


def figure_data(against_baseline: dict[str, dict] | None, test_vs_train: dict[str, dict],
                psi_max: float, kl_max: float, baseline_label: str | None = None, method: str = "factory") -> dict:
    """Ordered features, one PSI series per comparison, and the features over a threshold.

    `flagged` are the features the drift gate fails on (baseline PSI > psi_max or KL > kl_max);
    `over_threshold_split` are test-vs-train features over psi_max, shown but not gated.
    """
    gated = against_baseline or {}
    primary = gated if gated else test_vs_train
    flagged = sorted(c for c, v in gated.items() if v["psi"] > psi_max or v["kl"] > kl_max)
    over = sorted(c for c, v in test_vs_train.items() if v["psi"] > psi_max)
    first = set(flagged) if gated else set(over)  # shown before any feature under the thresholds
    names = sorted(set(gated) | set(test_vs_train),
                   key=lambda c: (c not in first, -primary.get(c, {}).get("psi", 0.0), c))
    shown = names[:MAX_FEATURES]
    series = []
    if gated:
        series.append({"name": BASELINE, "gated": True, "baseline": baseline_label,
                       "psi": [gated.get(c, {}).get("psi") for c in shown]})
    series.append({"name": SPLIT, "gated": False, "psi": [test_vs_train.get(c, {}).get("psi") for c in shown]})
    panels = flagged if gated else over  # most drifted first
    panels = sorted(panels, key=lambda c: -primary[c]["psi"])
    panels = [c for c in panels if "bins" in primary[c]]
    distributions = [{"feature": c, "comparison": BASELINE if gated else SPLIT, "psi": primary[c]["psi"],
                      "kl": primary[c]["kl"], "nulls": primary[c].get("nulls"), **primary[c]["bins"]}
                     for c in panels[:MAX_PANELS]]  # a list: the JSON keeps the order
    return {"features": shown, "omitted": len(names) - len(shown), "series": series,
            "psi_max": psi_max, "kl_max": kl_max, "flagged": flagged, "over_threshold_split": over,
            "kl": {c: gated[c]["kl"] for c in shown if c in gated}, "method": method,
            "distributions": distributions, "distributions_omitted": len(panels) - len(distributions)}


def render(data: dict, path: str | Path, dpi: int = DPI) -> Path:
    """Horizontal PSI bars per feature; bars over the threshold red, the threshold a dashed line; a zero
    PSI is a short outlined bar, never nothing."""
    features, series = data["features"], data["series"]
    n, k = len(features), len(series)
    height = 0.8 / k
    values = [v for s in series for v in s["psi"] if v is not None]
    top = max(values + [data["psi_max"]]) * 1.25
    flagged = set(data["flagged"]) | set(data["over_threshold_split"])
    with figure(figsize=(9, 1.9 + 0.3 * max(n, 1) * k ** 0.5)) as (fig, ax):
        y = np.arange(n)
        for i, s in enumerate(series):
            ys = y + (i - (k - 1) / 2) * height
            psi = [v if v is not None else 0.0 for v in s["psi"]]
            over = [(v > data["psi_max"]) or (s["gated"] and f in data["flagged"]) for v, f in zip(psi, features)]
            ax.barh(ys, [max(v, top * MIN_BAR) for v in psi], height=height, linewidth=0.8, edgecolor="#333333",
                    color=[_FLAG if o else _COLOURS[s["name"]] for o in over])
            for f, yy, v, raw, o in zip(features, ys, psi, s["psi"], over if i == 0 else []):  # first series
                kl = data["kl"].get(f, 0.0) if s["gated"] else 0.0
                label = ("n/a" if raw is None else f"{v:.3f}") + (f" (KL {kl:.3f})" if kl > data["kl_max"] else "")
                ax.text(max(v, top * MIN_BAR) + top * 0.01, yy, label, va="center", fontsize=FONT["label"],
                        color=_FLAG if o else "#333333")
        ax.axvline(data["psi_max"], color=_FLAG, ls="--", lw=1)
        ax.set_yticks(y, [f + (" *" if f in flagged else "") for f in features], fontsize=FONT["tick"])
        ax.tick_params(axis="x", labelsize=FONT["tick"])
        ax.invert_yaxis()
        ax.set_xlim(0, top)
        ax.set_xlabel("PSI (population stability index)", fontsize=FONT["tick"])
        ax.grid(axis="x", alpha=0.3)
        ax.legend(handles=_legend(series, data["psi_max"]), fontsize=FONT["legend"], loc="lower right")
        gated = any(s["gated"] for s in series)
        definition = _DEFINITION.get(data.get("method", "factory"), data.get("method"))
        title = (f"Drift per feature: PSI against the baseline profile (gated; KL too; {definition})" if gated else
                 f"Drift per feature: test vs train split (no baseline yet, not gated; {definition})")
        note = f"{len(data['flagged'])} flagged" if gated else f"{len(data['over_threshold_split'])} over threshold"
        if data["omitted"]:
            note += f", {data['omitted']} features not shown (less drifted)"
        named = f"\n{data['caption']}" if data.get("caption") else ""
        ax.set_title(f"{title}\n{note}; * = over a threshold{named}", fontsize=FONT["title"])
        fig.tight_layout()
        return save_png(fig, path, dpi, PALETTE)


def render_distributions(data: dict, path: str | Path, dpi: int = DPI) -> Path:
    """One panel per flagged feature: its reference and current shares over the gate's bins."""
    panels = data.get("distributions", [])
    rows = max((len(panels) + 1) // 2, 1)
    cols = 2 if len(panels) > 1 else 1
    with figure(rows, cols, figsize=(_PANEL[0] * cols, 0.6 + _PANEL[1] * rows), squeeze=False) as (fig, axes):
        flat = list(axes.ravel())
        for ax, dist in zip(flat, panels):
            _distribution(ax, dist)
        for ax in flat[len(panels):]:
            ax.axis("off")
        if not panels:
            flat[0].text(0.5, 0.5, "no feature over a drift threshold: no distribution to show",
                         ha="center", va="center", fontsize=9)
        definition = _DEFINITION.get(data.get("method", "factory"), data.get("method"))
        more = (f"; {data['distributions_omitted']} more flagged features not drawn (see drift_per_feature.json)"
                if data.get("distributions_omitted") else "")
        named = f"\n{data['caption']}" if data.get("caption") else ""
        fig.suptitle(f"Reference vs current distribution per flagged feature, over the gate's bins ({definition})"
                     f"{more}{named}", fontsize=FONT["title"])
        fig.tight_layout()
        return save_png(fig, path, dpi, PALETTE)


def _distribution(ax, dist: dict) -> None:
    """Reference and current shares side by side over the gate's bins (tails and unseen categories too)."""
    x = np.arange(len(dist["labels"]))
    ref_name = "baseline" if dist["comparison"] == BASELINE else "train"
    cur_name = "this snapshot" if dist["comparison"] == BASELINE else "test"
    top = max(list(dist["reference"]) + list(dist["current"]) + [0.01]) * 1.1
    for dx, shares, colour, name in ((-0.2, dist["reference"], _COLOURS[BASELINE], f"{ref_name} (reference)"),
                                     (0.2, dist["current"], _FLAG, f"{cur_name} (current)")):
        ax.bar(x + dx, [max(v, top * MIN_BAR) for v in shares], width=0.4, color=colour, label=name,
               edgecolor="#333333", linewidth=0.6)  # an empty bin (an unseen category) stays visible
    ax.set_ylim(0, top)
    ax.set_xticks(x, dist["labels"], fontsize=FONT["legend"], rotation=40, ha="right")
    ax.set_ylabel("share of non-null rows", fontsize=FONT["legend"])
    ax.tick_params(axis="y", labelsize=FONT["legend"])
    nulls = dist.get("nulls") or {}
    null_note = (f"; nulls {nulls['reference']:.1%} -> {nulls['current']:.1%}"
                 if nulls.get("reference") is not None else "")
    ax.set_title(f"{dist['feature']}: PSI {dist['psi']:.3f}, KL {dist['kl']:.3f}{null_note}", fontsize=FONT["legend"])
    ax.legend(fontsize=FONT["legend"] - 1, loc="upper right")
    ax.grid(axis="y", alpha=0.3)


def _legend(series: list[dict], psi_max: float) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return ([Patch(color=_COLOURS[s["name"]], label=s["name"] + (" (gated)" if s["gated"] else "")) for s in series]
            + [Patch(color=_FLAG, label="over a threshold"),
               Line2D([], [], color=_FLAG, ls="--", lw=1, label=f"policy drift_psi_max {psi_max}")])


def write_drift_plot(df: pd.DataFrame, contract: Contract, split: np.ndarray, drift_details: dict,
                     hygiene_policy, files, caption: str = "") -> dict[str, Path]:
    """The drift plot and its data in the hygiene folder (FILES), from the drift gate's details and the split.
    CAPTION (core/plots.caption): the snapshot and the run, drawn on both figures."""
    method = hygiene_policy.drift_method
    data = figure_data(drift_details.get("per_feature"),
                       split_drift(df, contract, split, int(hygiene_policy.drift_bins), method),
                       float(hygiene_policy.drift_psi_max), float(hygiene_policy.drift_kl_max),
                       drift_details.get("baseline"), method)
    data["caption"] = caption
    atomic_write_json(files.drift_data, data)
    return {"drift_plot": render(data, files.drift_plot), "drift_data": files.drift_data,
            "drift_distributions": render_distributions(data, files.drift_distributions)}
