"""Mining the screen's candidate regions: exact values and value pairs whose label purity is far above
the base rate (apriori-style, Bonferroni-corrected binomial test), each extended with the values its
rows share far more often than the data does."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd


def encode(df: pd.DataFrame, cols: list[str]) -> tuple[dict, dict, dict]:
    codes, uniques, counts = {}, {}, {}
    for c in cols:
        k, u = pd.factorize(df[c], use_na_sentinel=False)  # a null is a value of its own
        codes[c], uniques[c] = k.astype(np.int64), u
        counts[c] = np.bincount(codes[c], minlength=len(u))
    return codes, uniques, counts


def candidates(codes: dict, counts: dict, y: np.ndarray, cols: list[str], cfg: dict, min_sup: int) -> tuple:
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


def match(codes: dict, items) -> np.ndarray:
    return np.logical_and.reduce([codes[c] == k for c, k in items])


def expand(codes, counts, items, rows, cols, n, share_min, lift_min) -> tuple:
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


def value_of(u, k):
    v = u[k]
    if pd.isna(v):
        return None
    return v.item() if hasattr(v, "item") else v


def rows_with_pattern(df: pd.DataFrame, pattern: dict) -> np.ndarray:
    masks = [df[c].isna().to_numpy() if v is None else (df[c] == v).fillna(False).to_numpy(dtype=bool)
             for c, v in pattern.items()]
    return np.logical_and.reduce(masks)
