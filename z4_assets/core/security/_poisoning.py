"""Backdoor screening of training data: small exact-value regions whose labels contradict the rest of the row.

A tabular backdoor sets a few features to a fixed pattern and flips the label. That leaves two
traces no clean dataset shows together: (1) rows sharing an exact value pattern whose label
purity is far above the base rate, and (2) labels that the *other* features of those rows do not
support. Step 1 mines single values and value pairs (apriori-style, support >= min_support)
whose purity passes a Bonferroni-corrected binomial test, and extends each pattern with the
values its rows share far more often than the data does. Step 2 fits one gradient-boosting model
on the rows and asks, for each region, what it predicts once the region's pattern columns are
replaced by values drawn from rows outside it (an interventional expectation, `donors` draws per
row). A region is suspicious when its observed purity exceeds that expectation by `excess_min`
and by `z_min` standard deviations.

Step 3 tells a trigger from a strong natural feature. A region explained by one feature's natural
value is not a backdoor: a one-value region (census `capital_gain = 15024`, a top code, 401(k)
eligibility) is that feature's own effect, and a region of several values is explained by one of
them when that value, on the rows that carry it *outside* the region (at least the screen's minimum
support), already shows nearly the region's purity (within `excess_min`). A trigger's values are
glued together: outside the region they are rare, or their rows do not carry its label. Explained
regions are reported (`natural_regions`), never flagged. What stays out of reach, and is said in
docs/security.md: a trigger of one feature value looks exactly like a natural value in the data.

The remaining suspicious regions that overlap by half form one cluster, whose core pattern flags the
rows that carry it with the cluster's label.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.security._poisoning_mining import candidates, encode, expand, match, rows_with_pattern, value_of

__all__ = ["PoisonScreen", "rows_with_pattern", "screen_poisoning"]


@dataclass
class PoisonScreen:
    flagged: np.ndarray          # bool per row of the screened frame
    cluster_of: np.ndarray       # cluster index per row, -1 when not flagged
    clusters: list[dict]
    report: dict


def _model_matrix(df: pd.DataFrame, contract: Contract, cols: list[str], codes: dict) -> tuple:
    """Raw features for the expectation model: numbers as floats, categories as codes."""
    blocks, categorical = [], []
    for c in cols:
        if contract.is_categorical(c):
            v = codes[c].astype(np.float64)
            v[df[c].isna().to_numpy()] = np.nan
            blocks.append(v)
            categorical.append(bool(codes[c].max(initial=0) < 250))
        else:
            blocks.append(df[c].to_numpy(dtype="float64", na_value=np.nan))
            categorical.append(False)
    return np.column_stack(blocks), np.array(categorical)


def _fit_expectation(x, y, categorical, cfg, seed, rng):
    from sklearn.ensemble import HistGradientBoostingClassifier

    fit = rng.choice(len(y), min(int(cfg.fit_rows), len(y)), replace=False)
    model = HistGradientBoostingClassifier(
        max_iter=100, max_leaf_nodes=15, learning_rate=0.1, early_stopping=False,
        random_state=seed, categorical_features=categorical if categorical.any() else None)
    return model.fit(x[fit], y[fit])


def _score_regions(model, x, y, regions: list[dict], cols: list[str], cfg, rng) -> list[dict]:
    """Observed vs expected purity per region; predictions batched (one predict call per ~200k rows)."""
    cap, donors = int(cfg.region_eval_rows), int(cfg.donors)
    pending, scored = [], []

    def flush():
        p = model.predict_proba(np.concatenate([b for _, b, _ in pending]))[:, 1]
        at = 0
        for r, block, k in pending:
            pr = p[at:at + len(block)].reshape(-1, donors).mean(axis=1)
            at += len(block)
            pc = pr if r["label"] == 1 else 1 - pr
            n, expected = int(r["mask"].sum()), float(pc.mean())
            sd = math.sqrt(max(n * float((pc * (1 - pc)).mean()), 1e-9))
            scored.append({**r, "rows": n, "purity": k / n, "expected_purity": expected,
                           "excess": k / n - expected, "z": (k - n * expected) / sd})
        pending.clear()

    for r in regions:
        rows, outside = np.flatnonzero(r["mask"]), np.flatnonzero(~r["mask"])
        k = int((y[rows] == r["label"]).sum())
        ev = np.sort(rng.choice(rows, cap, replace=False)) if len(rows) > cap else rows
        col_idx = [cols.index(c) for c, _ in r["items"]]
        block = np.repeat(x[ev], donors, axis=0)
        block[:, col_idx] = x[outside[rng.integers(0, len(outside), len(block))]][:, col_idx]
        pending.append((r, block, k))
        if sum(len(b) for _, b, _ in pending) >= 200_000:
            flush()
    if pending:
        flush()
    return scored


def screen_poisoning(df: pd.DataFrame, contract: Contract, cfg: dict, seed: int) -> PoisonScreen:
    """Screen every row of DF (features as the model sees them, raw); cfg = policy security.poisoning."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    cols = list(contract.model_features)
    y_all = (df[contract.target.column] == contract.target.positive).to_numpy(dtype=np.float64)
    n_all = len(df)
    sample = np.arange(n_all)
    if n_all > int(cfg.sample_rows):
        sample = np.sort(rng.choice(n_all, int(cfg.sample_rows), replace=False))
    frame, y = df.iloc[sample], y_all[sample]
    n, base = len(frame), float(y.mean()) if len(y) else 0.0
    codes, uniques, counts = encode(frame, cols)
    min_sup = max(int(cfg.min_support_rows), int(math.ceil(float(cfg.min_support_share) * n)))
    found, tested = candidates(codes, counts, y, cols, cfg, min_sup)

    regions: dict[tuple, dict] = {}
    for items, cnt, label, logp in found:
        rows = np.flatnonzero(match(codes, items) & (y == label))
        key = expand(codes, counts, items, rows, cols, n, float(cfg.expand_share), float(cfg.expand_lift))
        if key not in regions:  # found is sorted by log p: the first is the most significant
            regions[key] = {"items": key, "label": label, "logp": logp}
    ranked = sorted(regions.values(), key=lambda r: r["logp"])
    examined = ranked[:int(cfg.max_regions)]

    scored = []
    if examined and 0 < base < 1:
        x, categorical = _model_matrix(frame, contract, cols, codes)
        for r in examined:
            r["mask"] = match(codes, r["items"])
        model = _fit_expectation(x, y, categorical, cfg, seed, rng)
        scored = _score_regions(model, x, y, examined, cols, cfg, rng)
    beyond = [r for r in scored if r["excess"] >= float(cfg.excess_min) and r["z"] >= float(cfg.z_min)]
    for r in beyond:
        r["explained_by"] = natural_explanation(r, codes, y, min_sup, float(cfg.excess_min),
                                                int(float(cfg.max_trigger_share) * n))
    suspicious = [r for r in beyond if r["explained_by"] is None]
    natural = [r for r in beyond if r["explained_by"] is not None]

    clusters = _cluster(suspicious)
    flagged = np.zeros(n_all, dtype=bool)
    cluster_of = np.full(n_all, -1)
    out = []
    for i, cl in enumerate(clusters):
        pattern = {c: value_of(uniques[c], k) for c, k in cl["core"]}
        carries = rows_with_pattern(df, pattern)
        hit = carries & (y_all == cl["label"]) & ~flagged
        flagged |= hit
        cluster_of[hit] = i
        n_pat = int(carries.sum())
        out.append({
            "cluster": i, "pattern": pattern, "label": _label(contract, cl["label"]),
            "rows_with_pattern": n_pat, "flagged_rows": int(hit.sum()),
            "label_purity": round(float((y_all[carries] == cl["label"]).mean()) if n_pat else 0.0, 6),
            "expected_purity": round(cl["best"]["expected_purity"], 6),
            "excess": round(cl["best"]["excess"], 6), "z": round(cl["best"]["z"], 3),
            "regions": len(cl["members"]), "label_homogeneous": True,
        })
    report = {
        "method": "exact-value regions (singles and pairs, apriori) with Bonferroni binomial purity test, "
                  "then label excess over an interventional expectation from a gradient-boosting model; "
                  "regions explained by one feature's natural value are reported, not flagged",
        "rows": n_all, "rows_screened": n, "min_support_rows": min_sup,
        "itemsets_tested": tested, "candidate_regions": len(regions), "regions_examined": len(scored),
        "suspicious_regions": len(suspicious),
        "natural_regions": [{**_public(r, uniques, contract), "explained_by": _named(r["explained_by"], uniques)}
                            for r in sorted(natural, key=lambda r: -r["rows"])[:20]],
        "natural_regions_total": len(natural), "flagged_rows": int(flagged.sum()),
        "flagged_share": round(float(flagged.sum()) / max(n_all, 1), 6), "clusters": out,
        "closest_regions": [_public(r, uniques, contract) for r in
                            sorted(scored, key=lambda r: -r["excess"])[:5]],
        "seconds": round(time.perf_counter() - start, 3),
    }
    return PoisonScreen(flagged, cluster_of, out, report)


def natural_explanation(r: dict, codes: dict, y: np.ndarray, min_sup: int, excess_min: float,
                        max_rows: int) -> dict | None:
    """What explains region R naturally, or None (a candidate trigger).

    More than MAX_ROWS rows: the data's own structure (a backdoor is a small planted share). One value:
    the region is that feature's own effect. Several: a value explains the region when the rows carrying
    it outside the region (>= MIN_SUP of them) show nearly its purity (within EXCESS_MIN).
    """
    items, label = r["items"], r["label"]
    if r["rows"] > max_rows:
        c, k = items[0]
        return {"column": c, "code": k, "why": f"the region covers {r['rows']} rows, more than a planted "
                f"trigger's share ({max_rows})", "rows_outside": None, "purity_outside": None}
    if len(items) == 1:
        (c, k), = items
        return {"column": c, "code": k, "why": "the region is one feature's value",
                "rows_outside": 0, "purity_outside": None}
    best = None
    for c, k in items:
        outside = (codes[c] == k) & ~r["mask"]
        n_out = int(outside.sum())
        if n_out < min_sup:
            continue
        purity = float((y[outside] == label).mean())
        if r["purity"] - purity < excess_min and (best is None or purity > best["purity_outside"]):
            best = {"column": c, "code": k, "why": "the value carries the label on rows outside the region too",
                    "rows_outside": n_out, "purity_outside": purity}
    return best


def _named(explained: dict, uniques: dict) -> dict:
    out = {k: v for k, v in explained.items() if k != "code"}
    out["value"] = value_of(uniques[explained["column"]], explained["code"])
    if out["purity_outside"] is not None:
        out["purity_outside"] = round(out["purity_outside"], 6)
    return out


def _label(contract: Contract, label: int) -> dict:
    """The cluster's label as the data spells it (the other declared category when not positive)."""
    t = contract.target
    others = [v for v in (contract.columns[t.column].categories or []) if v != t.positive]
    value = t.positive if label else (others[0] if len(others) == 1 else f"not {t.positive}")
    return {"positive": bool(label), "value": value}


def _public(r: dict, uniques: dict, contract: Contract) -> dict:
    return {"pattern": {c: value_of(uniques[c], k) for c, k in r["items"]},
            "label": _label(contract, r["label"]), "rows": r["rows"],
            "purity": round(r["purity"], 6), "expected_purity": round(r["expected_purity"], 6),
            "excess": round(r["excess"], 6), "z": round(r["z"], 3)}


def _cluster(suspicious: list[dict]) -> list[dict]:
    """Merge suspicious regions of one label whose rows overlap by half the smaller one."""
    clusters: list[dict] = []
    for r in sorted(suspicious, key=lambda r: (-r["rows"], r["items"])):
        for cl in clusters:
            if cl["label"] != r["label"]:
                continue
            overlap = int((cl["mask"] & r["mask"]).sum())
            if overlap >= 0.5 * min(int(cl["mask"].sum()), r["rows"]):
                cl["mask"] = cl["mask"] | r["mask"]
                cl["members"].append(r)
                core = tuple(i for i in cl["core"] if i in r["items"])
                # never shrink to one value: one value alone is a natural feature, not this cluster's trigger
                cl["core"] = core if len(core) >= min(2, len(cl["core"])) else cl["core"]
                break
        else:
            clusters.append({"label": r["label"], "mask": r["mask"].copy(), "members": [r],
                             "core": r["items"], "best": r})
    return clusters
