"""The drift gates: distribution drift (PSI, KL), missingness drift, and features with no baseline.

A PSI over its threshold on so few rows that chance alone could give it is INSUFFICIENT EVIDENCE,
not drift (NOISE_FACTOR); a large shift on few rows still fails.

A dataset's first snapshot has no baseline: the three gates then say INSUFFICIENT EVIDENCE (blocking
or not as `hygiene.drift_no_baseline_blocks` says) and report no measured value.
"""

from __future__ import annotations

import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.errors import Z4Error
from z4_assets.core.gates import Gate
from z4_assets.core.hygiene import _drift as drift
from z4_assets.core.stages import HYGIENE

G = HYGIENE.gate
# Over a threshold counts as drift only beyond this many times the PSI sampling noise alone gives at
# the two sample sizes (chi-square, B - 1 degrees of freedom: its 99.9th percentile at 11 df is 2.9x
# its mean); below, the gate says INSUFFICIENT EVIDENCE (`drift_small_sample_blocks`).
NOISE_FACTOR = 3.0
DEFINITIONS = {
    "factory": "factory definition (docs/drift.md): reference deciles plus a bin below the reference's minimum "
               "and one above its maximum; nulls left out (missingness apart); zero shares -> 1e-4, renormalised; "
               "PSI = sum((c-r) ln(c/r)); KL = KL(reference || current)",
    "evidently": f"Evidently {'0.7.23'} definition: Sturges bins over reference and current together (one bin per "
                 "value when the reference has <= 20 values, or the feature is categorical); nulls and +-inf "
                 "dropped; zero shares -> min/1e6 (or 1e-4); PSI = sum((r-c) ln(r/c)); KL = KL(reference || current)",
}


def drift_gates(df: pd.DataFrame, contract: Contract, h, baseline: dict | None,
                reference: pd.DataFrame | None) -> list[Gate]:
    """drift, drift_missingness and drift_new_features of DF against BASELINE (its profile) and
    REFERENCE (its value counts, needed by `drift_method: evidently`)."""
    method = h.drift_method
    if baseline is None:
        return _no_baseline(h, method)
    if baseline.get("version") != drift.PROFILE_VERSION:
        raise Z4Error(f"the dataset's drift baseline has profile format {baseline.get('version', 1)}, this factory "
                      f"reads format {drift.PROFILE_VERSION} (tail bins, nulls apart): delete it to re-baseline")
    if method == "evidently":
        if reference is None:
            raise Z4Error("drift_method evidently needs the baseline's reference value counts, and there are none")
        from z4_assets.core.hygiene import _drift_evidently

        per = _drift_evidently.drift_against(reference, baseline, df, contract)
    else:
        per = drift.drift_against(baseline, df)
    label = {"snapshot": baseline.get("snapshot"), "sha256": baseline.get("file_sha256")}
    new = drift.new_features(baseline, contract)
    return [_distribution(per, h, method, label, new), _missingness(per, h, label),
            _new_features(new, baseline, contract, h, label)]


def _no_baseline(h, method: str) -> list[Gate]:
    reason = ("no baseline: this is the dataset's first accepted snapshot, so there is nothing to compare "
              "with; it becomes the baseline once every hygiene gate lets it through")
    blocks = bool(h.drift_no_baseline_blocks)
    details = {"baseline": None, "method": method}
    return [G.drift.insufficient(reason, "<=", h.drift_psi_max, blocks, details),
            G.drift_missingness.insufficient(reason, "<=", h.drift_missing_share_max, blocks, details),
            G.drift_new_features.insufficient(reason, "<=", 0, blocks, details)]


def _distribution(per: dict, h, method: str, label: dict, new: list[str]) -> Gate:
    measured = {c: v for c, v in per.items() if v["psi"] is not None}
    details = {"method": method, "definition": DEFINITIONS[method], "baseline": label["snapshot"],
               "baseline_sha256": label["sha256"], "per_feature": measured,
               "not_measured": sorted(set(per) - set(measured)), "new_features": {c: drift.NEW for c in new},
               "kl_threshold": h.drift_kl_max}
    if not measured:
        return G.drift.insufficient(f"no feature has non-null values on both sides ({method} definition)",
                                    "<=", h.drift_psi_max, True, details)
    kl_worst = max(measured, key=lambda c: measured[c]["kl"])
    details.update(max_kl=measured[kl_worst]["kl"], max_kl_feature=kl_worst, noise_factor=NOISE_FACTOR)
    over = {"psi": [c for c in measured if measured[c]["psi"] > h.drift_psi_max],
            "kl": [c for c in measured if measured[c]["kl"] > h.drift_kl_max]}
    real = {k: [c for c in cs if _beyond_noise(measured[c], k)] for k, cs in over.items()}
    details["within_sampling_noise"] = sorted(set(over["psi"] + over["kl"]) - set(real["psi"] + real["kl"]))
    if not real["psi"] and not real["kl"] and details["within_sampling_noise"]:
        c = max(details["within_sampling_noise"], key=lambda f: measured[f]["psi"])
        v = measured[c]
        return G.drift.insufficient(
            f"{c}'s PSI {v['psi']:.3f} (KL {v['kl']:.3f}) is over a threshold but within sampling noise at "
            f"{v['rows']['reference']} baseline and {v['rows']['current']} current rows (noise PSI "
            f"{v['noise_psi']:.3f}; drift needs {NOISE_FACTOR:g}x that): too few rows to tell drift from chance "
            f"({method} definition)", "<=", h.drift_psi_max, bool(h.drift_small_sample_blocks), details)
    pool = real["psi"] or [c for c in measured if c not in details["within_sampling_noise"]] or list(measured)
    worst = max(pool, key=lambda c: measured[c]["psi"])
    g = G.drift.compare(measured[worst]["psi"], "<=", h.drift_psi_max,
                        f"highest PSI against baseline ({worst}; {method} definition)", details)
    if g.passed and real["kl"]:
        kl_worst = max(real["kl"], key=lambda c: measured[c]["kl"])
        g = G.drift.compare(measured[kl_worst]["kl"], "<=", h.drift_kl_max,
                            f"highest KL(reference || current) against baseline ({kl_worst}; {method} definition)",
                            details)
    return g


def _beyond_noise(v: dict, metric: str) -> bool:
    """A PSI (or KL, whose noise is half PSI's) more than NOISE_FACTOR times what chance alone gives."""
    noise = v["noise_psi"] * (0.5 if metric == "kl" else 1.0)
    return v[metric] > NOISE_FACTOR * noise


def _missingness(per: dict, h, label: dict) -> Gate:
    shares = {c: {**v["nulls"], "change": abs(v["nulls"]["current"] - v["nulls"]["reference"])} for c, v in per.items()}
    details = {"baseline": label["snapshot"], "per_feature": shares}
    if not shares:
        return G.drift_missingness.insufficient("no feature in both the baseline and the snapshot", "<=",
                                                h.drift_missing_share_max, True, details)
    worst = max(shares, key=lambda c: (shares[c]["change"], c))
    w = shares[worst]
    return G.drift_missingness.compare(
        round(w["change"], 6), "<=", h.drift_missing_share_max,
        f"largest change of a feature's share of nulls ({worst}: {w['reference']:.4f} in the baseline, "
        f"{w['current']:.4f} now)", details)


def _new_features(new: list[str], baseline: dict, contract: Contract, h, label: dict) -> Gate:
    dropped = sorted(set(baseline["features"]) - set(contract.candidate_features))
    details = {"baseline": label["snapshot"], "new_features": {c: drift.NEW for c in new}, "not_in_snapshot": dropped,
               "policy": h.drift_new_feature}
    listed = ", ".join(new[:10]) + (f" and {len(new) - 10} more" if len(new) > 10 else "")
    if new and h.drift_new_feature == "warn":
        return G.drift_new_features.verdict(
            True, len(new), "<=", 0, f"warn (policy drift_new_feature: warn): {len(new)} model feature(s) "
            f"new: no baseline ({listed}); not drift-checked", details)
    what = f"model features with no baseline profile (new: no baseline: {listed})" if new else \
        "model features with no baseline profile"
    return G.drift_new_features.compare(len(new), "<=", 0, what, details)
