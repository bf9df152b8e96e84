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
and by `z_min` standard deviations; overlapping suspicious regions form one cluster, whose core
pattern flags the rows that carry it with the cluster's label.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract


@dataclass
class PoisonScreen:
    flagged: np.ndarray          # bool per row of the screened frame
    cluster_of: np.ndarray       # cluster index per row, -1 when not flagged
    clusters: list[dict]
    report: dict


def _encode(df: pd.DataFrame, cols: list[str]) -> tuple[dict, dict, dict]:
    codes, uniques, counts = {}, {}, {}
    for c in cols:
        k, u = pd.factorize(df[c], use_na_sentinel=False)  # a null is a value of its own
        codes[c], uniques[c] = k.astype(np.int64), u
        counts[c] = np.bincount(codes[c], minlength=len(u))
    return codes, uniques, counts


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


def _candidates(codes: dict, counts: dict, y: np.ndarray, cols: list[str], cfg: dict, min_sup: int) -> tuple:
    """Single values and value pairs with support >= min_sup whose label purity passes the
    Bonferroni-corrected binomial test; the `3 * max_regions` most significant, as
    (items, rows, label, log p), and the number of itemsets tested."""
    from scipy.stats import binom

    purity_min = float(cfg.purity_min)
    compact = {}
    for c in cols:
        keep = np.flatnonzero(counts[c] >= min_sup)
        remap = np.full(len(counts[c]), -1)
        remap[keep] = np.arange(len(keep))
        compact[c] = (remap[codes[c]], keep)
    blocks, tested = [], 0

    def collect(cnt, pos, item_of):
        nonlocal tested
        sup = cnt >= min_sup
        tested += int(sup.sum())
        rate = np.divide(pos, cnt, out=np.zeros(len(cnt)), where=cnt > 0)
        sel = np.flatnonzero(sup & (np.maximum(rate, 1 - rate) >= purity_min))
        if len(sel):
            blocks.append((cnt[sel], np.round(pos[sel]), sel, item_of))

    for c in cols:
        _, keep = compact[c]
        pos = np.bincount(codes[c], weights=y, minlength=len(counts[c]))
        collect(counts[c][keep], pos[keep], lambda s, c=c, keep=keep: ((c, int(keep[s])),))
    for a, b in itertools.combinations(cols, 2):
        (ca, ka), (cb, kb) = compact[a], compact[b]
        if not len(ka) or not len(kb):
            continue
        m = (ca >= 0) & (cb >= 0)
        key = ca[m] * len(kb) + cb[m]
        size = len(ka) * len(kb)
        cnt = np.bincount(key, minlength=size)
        pos = np.bincount(key, weights=y[m], minlength=size)
        collect(cnt, pos, lambda s, a=a, b=b, ka=ka, kb=kb, w=len(kb):
                ((a, int(ka[s // w])), (b, int(kb[s % w]))))
    if not blocks:
        return [], tested
    cnt = np.concatenate([blk[0] for blk in blocks])
    pos = np.concatenate([blk[1] for blk in blocks])
    label = (2 * pos >= cnt).astype(int)
    hits = np.where(label == 1, pos, cnt - pos)
    base = float(y.mean())
    logp = binom.logsf(hits - 1, cnt, np.where(label == 1, base, 1 - base))
    owner = np.concatenate([np.full(len(blk[2]), i) for i, blk in enumerate(blocks)])
    local = np.concatenate([blk[2] for blk in blocks])
    keep = np.flatnonzero(logp <= math.log(float(cfg.alpha) / max(tested, 1)))
    keep = keep[np.argsort(logp[keep], kind="stable")][: 3 * int(cfg.max_regions)]
    return [(blocks[owner[i]][3](local[i]), int(cnt[i]), int(label[i]), float(logp[i])) for i in keep], tested


def _match(codes: dict, items) -> np.ndarray:
    return np.logical_and.reduce([codes[c] == k for c, k in items])


def _expand(codes, counts, items, rows, cols, n, share_min, lift_min) -> tuple:
    """Add every value that nearly all the region's rows share and the data at large does not."""
    out = dict(items)
    for c in cols:
        if c in out or not len(rows):
            continue
        bc = np.bincount(codes[c][rows], minlength=len(counts[c]))
        top = int(bc.argmax())
        share = bc[top] / len(rows)
        if share >= share_min and share >= lift_min * counts[c][top] / n:
            out[c] = top
    return tuple(sorted(out.items()))


def _value(u, k):
    v = u[k]
    if pd.isna(v):
        return None
    return v.item() if hasattr(v, "item") else v


def rows_with_pattern(df: pd.DataFrame, pattern: dict) -> np.ndarray:
    masks = [df[c].isna().to_numpy() if v is None else (df[c] == v).fillna(False).to_numpy(dtype=bool)
             for c, v in pattern.items()]
    return np.logical_and.reduce(masks)


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
    codes, uniques, counts = _encode(frame, cols)
    min_sup = max(int(cfg.min_support_rows), int(math.ceil(float(cfg.min_support_share) * n)))
    found, tested = _candidates(codes, counts, y, cols, cfg, min_sup)

    regions: dict[tuple, dict] = {}
    for items, cnt, label, logp in found:
        rows = np.flatnonzero(_match(codes, items) & (y == label))
        key = _expand(codes, counts, items, rows, cols, n, float(cfg.expand_share), float(cfg.expand_lift))
        if key not in regions:  # found is sorted by log p: the first is the most significant
            regions[key] = {"items": key, "label": label, "logp": logp}
    ranked = sorted(regions.values(), key=lambda r: r["logp"])
    examined = ranked[:int(cfg.max_regions)]

    scored = []
    if examined and 0 < base < 1:
        x, categorical = _model_matrix(frame, contract, cols, codes)
        for r in examined:
            r["mask"] = _match(codes, r["items"])
        model = _fit_expectation(x, y, categorical, cfg, seed, rng)
        scored = _score_regions(model, x, y, examined, cols, cfg, rng)
    suspicious = [r for r in scored
                  if r["excess"] >= float(cfg.excess_min) and r["z"] >= float(cfg.z_min)]

    clusters = _cluster(suspicious)
    flagged = np.zeros(n_all, dtype=bool)
    cluster_of = np.full(n_all, -1)
    out = []
    for i, cl in enumerate(clusters):
        pattern = {c: _value(uniques[c], k) for c, k in cl["core"]}
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
                  "then label excess over an interventional expectation from a gradient-boosting model",
        "rows": n_all, "rows_screened": n, "min_support_rows": min_sup,
        "itemsets_tested": tested, "candidate_regions": len(regions), "regions_examined": len(scored),
        "suspicious_regions": len(suspicious), "flagged_rows": int(flagged.sum()),
        "flagged_share": round(float(flagged.sum()) / max(n_all, 1), 6), "clusters": out,
        "closest_regions": [_public(r, uniques, contract) for r in
                            sorted(scored, key=lambda r: -r["excess"])[:5]],
        "seconds": round(time.perf_counter() - start, 3),
    }
    return PoisonScreen(flagged, cluster_of, out, report)


def _label(contract: Contract, label: int) -> dict:
    """The cluster's label as the data spells it (the other declared category when not positive)."""
    t = contract.target
    others = [v for v in (contract.columns[t.column].categories or []) if v != t.positive]
    value = t.positive if label else (others[0] if len(others) == 1 else f"not {t.positive}")
    return {"positive": bool(label), "value": value}


def _public(r: dict, uniques: dict, contract: Contract) -> dict:
    return {"pattern": {c: _value(uniques[c], k) for c, k in r["items"]},
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
                cl["core"] = tuple(i for i in cl["core"] if i in r["items"]) or cl["core"]
                break
        else:
            clusters.append({"label": r["label"], "mask": r["mask"].copy(), "members": [r],
                             "core": r["items"], "best": r})
    return clusters
