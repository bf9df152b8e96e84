"""Drift per feature as a picture: PSI against the baseline (gated) and test against train (shown only).

A reviewer sees at a glance which features moved and how far from the policy threshold they are.
The figure data is written next to the PNG, so what is drawn can be checked without reading pixels.
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

DPI = 72
MAX_FEATURES = 30  # the most drifted ones; the rest are counted in the title
BASELINE, SPLIT = "snapshot vs baseline", "test vs train split"
_COLOURS, _FLAG = {BASELINE: "#4C72B0", SPLIT: "#9AA5B1"}, "#C44E52"


def split_drift(df: pd.DataFrame, contract: Contract, split: np.ndarray, bins: int) -> dict[str, dict]:
    """PSI and KL per feature of the test split against a profile of the training split."""
    train, test = df[split == TRAIN], df[split == TEST]
    if train.empty or test.empty:
        return {}
    return drift.drift_against(drift.build_profile(train, contract, bins), test)


def figure_data(against_baseline: dict[str, dict] | None, test_vs_train: dict[str, dict],
                psi_max: float, kl_max: float, baseline_label: str | None = None) -> dict:
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
    return {"features": shown, "omitted": len(names) - len(shown), "series": series,
            "psi_max": psi_max, "kl_max": kl_max, "flagged": flagged, "over_threshold_split": over,
            "kl": {c: gated[c]["kl"] for c in shown if c in gated}}


def render(data: dict, path: str | Path, dpi: int = DPI) -> Path:
    """Horizontal PSI bars per feature; bars over the threshold red, the threshold a dashed line."""
    features, series = data["features"], data["series"]
    n, k = len(features), len(series)
    height = 0.8 / k
    values = [v for s in series for v in s["psi"] if v is not None]
    top = max(values + [data["psi_max"]]) * 1.25
    flagged = set(data["flagged"]) | set(data["over_threshold_split"])
    with figure(figsize=(8, 1.6 + 0.26 * max(n, 1) * k ** 0.5)) as (fig, ax):
        y = np.arange(n)
        for i, s in enumerate(series):
            ys = y + (i - (k - 1) / 2) * height
            psi = [v if v is not None else 0.0 for v in s["psi"]]
            over = [(v > data["psi_max"]) or (s["gated"] and f in data["flagged"]) for v, f in zip(psi, features)]
            ax.barh(ys, psi, height=height, color=[_FLAG if o else _COLOURS[s["name"]] for o in over])
            for f, yy, v, raw, o in zip(features, ys, psi, s["psi"], over if i == 0 else []):  # first series
                kl = data["kl"].get(f, 0.0) if s["gated"] else 0.0
                label = ("n/a" if raw is None else f"{v:.3f}") + (f" (KL {kl:.3f})" if kl > data["kl_max"] else "")
                ax.text(v + top * 0.01, yy, label, va="center", fontsize=7, color=_FLAG if o else "#333333")
        ax.axvline(data["psi_max"], color=_FLAG, ls="--", lw=1)
        ax.set_yticks(y, [f + (" *" if f in flagged else "") for f in features], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, top)
        ax.set_xlabel("PSI (population stability index)")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(handles=_legend(series, data["psi_max"]), fontsize=7, loc="lower right")
        gated = any(s["gated"] for s in series)
        title = ("Drift per feature: PSI against the baseline profile (gated; KL too)" if gated else
                 "Drift per feature: test vs train split (no baseline yet, not gated)")
        note = f"{len(data['flagged'])} flagged" if gated else f"{len(data['over_threshold_split'])} over threshold"
        if data["omitted"]:
            note += f", {data['omitted']} features not shown (less drifted)"
        ax.set_title(f"{title}\n{note}; * = over a threshold", fontsize=9)
        fig.tight_layout()
        return save_png(fig, path, dpi)


def _legend(series: list[dict], psi_max: float) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return ([Patch(color=_COLOURS[s["name"]], label=s["name"] + (" (gated)" if s["gated"] else "")) for s in series]
            + [Patch(color=_FLAG, label="over a threshold"),
               Line2D([], [], color=_FLAG, ls="--", lw=1, label=f"policy drift_psi_max {psi_max}")])


def write_drift_plot(df: pd.DataFrame, contract: Contract, split: np.ndarray, drift_details: dict,
                     hygiene_policy, files) -> dict[str, Path]:
    """The drift plot and its data in the hygiene folder (FILES), from the drift gate's details and the split."""
    data = figure_data(drift_details.get("per_feature"),
                       split_drift(df, contract, split, int(hygiene_policy.drift_bins)),
                       float(hygiene_policy.drift_psi_max), float(hygiene_policy.drift_kl_max),
                       drift_details.get("baseline"))
    atomic_write_json(files.drift_data, data)
    return {"drift_plot": render(data, files.drift_plot), "drift_data": files.drift_data}
