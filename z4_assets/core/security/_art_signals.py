"""ART's poison detectors as a reported signal beside the screen (not a gate: see poisoning.py).

Measured here they do not find tabular backdoors (shared/notes/ml-libraries.md): activation
clustering flags a large share of clean data, spectral signatures flag a fixed share of every
class. They run on a seeded sample of the training rows, on the last hidden layer, and are
compared with the data-level screen's flags on the same rows.
"""

from __future__ import annotations

import time

import numpy as np

from z4_assets.core.security._art_model import art_classifier, hidden_last


def _agreement(art_flags: np.ndarray, screen_flags: np.ndarray) -> dict:
    both = int((art_flags & screen_flags).sum())
    return {"flagged_share": round(float(art_flags.mean()), 6),
            "share_of_screen_flags_also_flagged": round(both / screen_flags.sum(), 6) if screen_flags.any() else None,
            "share_of_flags_that_screen_flagged": round(both / art_flags.sum(), 6) if art_flags.any() else None}


def art_poison_signals(model, x: np.ndarray, y: np.ndarray, screen_flags: np.ndarray,
                       cfg: dict, seed: int) -> dict:
    """ActivationDefence (PCA to 10 dims, 2 clusters, smaller cluster) and SpectralSignatureDefense."""
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = min(len(x), int(cfg.art_rows))
    if n < 50 or len(np.unique(y)) < 2:
        return {"note": "too few training rows for ART's detectors", "rows": int(n)}
    rows = np.sort(rng.choice(len(x), n, replace=False))
    xs, ys = np.ascontiguousarray(x[rows], np.float32), np.eye(2, dtype=np.float32)[y[rows].astype(int)]
    flags = screen_flags[rows]
    clf = art_classifier(hidden_last(model), xs.shape[1])
    out = {"rows": int(n), "layer": "last hidden layer"}
    np.random.seed(seed)  # MiniBatchKMeans inside ActivationDefence uses numpy's global RNG
    _, clean = ActivationDefence(clf, xs, ys).detect_poison(
        nb_clusters=2, nb_dims=10, reduce="PCA", cluster_analysis="smaller")
    out["activation_clustering"] = _agreement(np.asarray(clean) == 0, flags)
    np.random.seed(seed)
    _, clean = SpectralSignatureDefense(clf, xs, ys, expected_pp_poison=float(cfg.art_expected_poison),
                                        batch_size=512).detect_poison()
    out["spectral_signatures"] = _agreement(np.asarray(clean) == 0, flags)
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out
