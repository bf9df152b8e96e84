"""Evasion robustness: FGSM and PGD in the model's scaled feature space, inside the contract's ranges.

An adversarial row only proves something if it could exist. So every attack runs with
per-feature clip values mapped from the contract's [min, max] (the snapshot's observed range
where the contract gives none) through the FeatureSpec scaling, and with ART's mask freezing:
sensitive attributes, columns the contract marks `immutable`, one-hot blocks (a category cannot
move by epsilon) and null indicators, plus the imputed value of a row whose value is null.
After the attack each row is projected back onto valid raw values (integers rounded, clipped to
the contract) before it is scored, and the report counts how many projected rows still break
the contract or moved a frozen column (both must be 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.training import FeatureSpec
from z4_assets.core.security._art_model import ART_BATCH, art_classifier, proba

ROBUSTNESS_DPI = 90


@dataclass
class FeatureBounds:
    lo: np.ndarray            # scaled space, per model input
    hi: np.ndarray
    mutable: np.ndarray       # bool per model input
    numeric: list[dict]       # per attacked numeric input: index, mean, std, raw lo/hi, integer, null_index
    frozen_reasons: dict


def feature_bounds(spec: FeatureSpec, contract: Contract, observed: pd.DataFrame) -> FeatureBounds:
    lo, hi, mutable, numeric, reasons = [], [], [], [], {}
    for c in spec.columns:
        name = c["name"]
        if c["kind"] != "numeric":
            lo += [0.0] * len(c["categories"])
            hi += [1.0] * len(c["categories"])
            mutable += [False] * len(c["categories"])
            reasons[name] = "sensitive attribute (one-hot)" if name in contract.sensitive else "one-hot category"
            continue
        col = contract.columns.get(name)
        values = observed[name].to_numpy(dtype="float64", na_value=np.nan)
        finite = values[np.isfinite(values)]
        raw_lo = col.min if col and col.min is not None else (float(finite.min()) if finite.size else c["median"])
        raw_hi = col.max if col and col.max is not None else (float(finite.max()) if finite.size else c["median"])
        frozen = None
        if name in contract.sensitive:
            frozen = "sensitive attribute"
        elif col is not None and col.immutable:
            frozen = "immutable in the contract"
        if frozen:
            reasons[name] = frozen
        idx = len(lo)
        lo.append((raw_lo - c["mean"]) / c["std"])
        hi.append(max((raw_hi - c["mean"]) / c["std"], lo[-1] + 1e-6))
        mutable.append(not frozen)
        null_index = None
        if c["null_indicator"]:
            null_index = len(lo)
            lo.append(0.0)
            hi.append(1.0)
            mutable.append(False)
            reasons[f"{name}__is_null"] = "null indicator"
        if not frozen:
            numeric.append({"index": idx, "name": name, "mean": c["mean"], "std": c["std"],
                            "raw_lo": float(raw_lo), "raw_hi": float(raw_hi), "null_index": null_index,
                            "integer": bool(col is not None and col.dtype == "integer")})
    return FeatureBounds(np.array(lo, np.float32), np.array(hi, np.float32), np.array(mutable),
                         numeric, reasons)


def row_mask(x: np.ndarray, bounds: FeatureBounds) -> np.ndarray:
    """1 where the attack may move a value: mutable columns, except a null row's imputed value."""
    mask = np.broadcast_to(bounds.mutable.astype(np.float32), x.shape).copy()
    for f in bounds.numeric:
        if f["null_index"] is not None:
            mask[x[:, f["null_index"]] > 0.5, f["index"]] = 0.0
    return mask


def project(x_adv: np.ndarray, x: np.ndarray, mask: np.ndarray, bounds: FeatureBounds) -> np.ndarray:
    """Back onto rows that could exist: raw values rounded (integers) and clipped to the contract."""
    out = np.where(mask > 0, x_adv, x).astype(np.float32)
    for f in bounds.numeric:
        raw = out[:, f["index"]].astype(np.float64) * f["std"] + f["mean"]
        if f["integer"]:
            raw = np.round(raw)
        raw = np.clip(raw, f["raw_lo"], f["raw_hi"])
        out[:, f["index"]] = ((raw - f["mean"]) / f["std"]).astype(np.float32)
    return out


def validity(x_adv: np.ndarray, x: np.ndarray, bounds: FeatureBounds, mask: np.ndarray) -> dict:
    """Rows that break the contract or moved a frozen input after projection (both must be 0)."""
    bad = np.zeros(len(x), dtype=bool)
    for f in bounds.numeric:
        raw = x_adv[:, f["index"]].astype(np.float64) * f["std"] + f["mean"]
        tol = 1e-3 * max(1.0, abs(f["raw_hi"]), abs(f["raw_lo"]))
        bad |= (raw < f["raw_lo"] - tol) | (raw > f["raw_hi"] + tol)
        if f["integer"]:
            bad |= np.abs(raw - np.round(raw)) > 1e-2
    moved = (np.abs(x_adv - x) > 1e-6) & (mask == 0)
    return {"rows_outside_contract": int(bad.sum()), "rows_with_frozen_input_moved": int(moved.any(axis=1).sum())}


def _metrics(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(y, p)) if 0 < y.mean() < 1 else float("nan")
    return {"accuracy": round(float(((p >= 0.5) == y).mean()), 6), "auc": round(auc, 6)}


DROP_RESAMPLES, DROP_CONFIDENCE = 1000, 0.95


def drop_interval(y: np.ndarray, p_clean: np.ndarray, p_adv: np.ndarray, seed: int) -> dict:
    """The accuracy drop's percentile interval: a paired bootstrap of the attacked rows (each row's
    clean correctness minus its attacked correctness), so the interval says how much the drop could
    move with another sample of the same size."""
    d = (((p_clean >= 0.5) == y).astype(np.float64) - ((p_adv >= 0.5) == y).astype(np.float64))
    if len(d) == 0:
        return {"accuracy_drop_ci": [None, None]}
    rng = np.random.default_rng([int(seed), 7])
    draws = d[rng.integers(0, len(d), (DROP_RESAMPLES, len(d)))].mean(axis=1)
    lo, hi = np.quantile(draws, [(1 - DROP_CONFIDENCE) / 2, (1 + DROP_CONFIDENCE) / 2])
    return {"accuracy_drop_ci": [round(float(lo), 6), round(float(hi), 6)],
            "accuracy_drop_ci_method": f"paired bootstrap of the attacked rows, {DROP_CONFIDENCE:.0%}, "
                                       f"{DROP_RESAMPLES} resamples"}


class Attacker:
    """FGSM and PGD (L-inf, scaled units) on one batch, with the contract's clip values and mask."""

    def __init__(self, model, x: np.ndarray, y: np.ndarray, bounds: FeatureBounds, pgd_iterations: int):
        self.model, self.bounds, self.iterations = model, bounds, int(pgd_iterations)
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.y, self.onehot = y, np.eye(2, dtype=np.float32)[y.astype(int)]
        lo, hi = np.minimum(bounds.lo, self.x.min(axis=0)), np.maximum(bounds.hi, self.x.max(axis=0))
        self.clf = art_classifier(model, self.x.shape[1], (lo, hi))
        self.mask = row_mask(self.x, bounds)

    def generate(self, attack: str, eps: float) -> np.ndarray:
        """Adversarial rows, projected back onto values the contract allows."""
        from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

        if attack == "fgsm":
            art = FastGradientMethod(self.clf, norm=np.inf, eps=eps, batch_size=ART_BATCH)
        else:
            art = ProjectedGradientDescent(self.clf, norm=np.inf, eps=eps, eps_step=eps / 4,
                                           max_iter=self.iterations, num_random_init=0,
                                           batch_size=ART_BATCH, verbose=False)
        return project(art.generate(self.x, y=self.onehot, mask=self.mask), self.x, self.mask, self.bounds)


def robustness_curve(model, x: np.ndarray, y: np.ndarray, bounds: FeatureBounds, cfg: dict, seed: int = 0) -> dict:
    """The attack that fits the family: FGSM and PGD where it is differentiable, HopSkipJump where it
    only gives decisions; a family that declares neither is refused (the gate fails)."""
    from z4_assets.core.security._art_model import gradient_module
    from z4_assets.core.security import _evasion_decision as decision

    kind, family = getattr(model, "attack", "gradient"), getattr(model, "family", "mlp")
    if kind == "gradient" and gradient_module(model) is not None:
        report = gradient_curve(model, x, y, bounds, cfg, seed)
        if family != "mlp":  # an exact torch copy: prove it scores as the artifact does
            copy = _torch_proba(gradient_module(model), x)
            report["gradient_copy_max_abs_diff"] = float(np.abs(copy - proba(model, x)).max()) if len(x) else 0.0
            if report["gradient_copy_max_abs_diff"] > 1e-4:
                return decision.refused(family, "its differentiable copy does not score as its artifact "
                                        f"(max diff {report['gradient_copy_max_abs_diff']:.2e})")
        return report
    if kind == "decision":
        return decision.decision_curve(model, x, y, bounds, cfg, seed)
    return decision.refused(family, f"declares attack {kind!r}: neither 'gradient' (with a torch module) nor "
                            "'decision'; the evasion stage cannot attack it")


def _torch_proba(module, x):
    from z4_assets.core.training import predict_proba

    return np.asarray(predict_proba(module, np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float64)


def gradient_curve(model, x: np.ndarray, y: np.ndarray, bounds: FeatureBounds, cfg: dict, seed: int = 0) -> dict:
    """Accuracy and AUC against epsilon for FGSM and PGD, on valid rows only."""
    attacker = Attacker(model, x, y, bounds, cfg.pgd_iterations)
    p_clean = proba(model, attacker.x)
    clean, p_gate = _metrics(y, p_clean), p_clean
    eps_grid = sorted({float(e) for e in cfg.epsilons} | {float(cfg.gate_epsilon)})
    points, checks = [], {"rows_outside_contract": 0, "rows_with_frozen_input_moved": 0}
    for eps in eps_grid:
        row = {"epsilon": eps}
        for name in ("fgsm", "pgd"):
            x_adv = attacker.generate(name, eps)
            for k, v in validity(x_adv, attacker.x, bounds, attacker.mask).items():
                checks[k] += v
            p_adv = proba(model, x_adv)
            m = _metrics(y, p_adv)
            if name == "pgd" and eps == float(cfg.gate_epsilon):
                p_gate = p_adv
            row[f"{name}_accuracy"], row[f"{name}_auc"] = m["accuracy"], m["auc"]
            row[f"{name}_rows_changed"] = int((np.abs(x_adv - attacker.x) > 1e-6).any(axis=1).sum())
        points.append(row)
    gate_point = next(p for p in points if p["epsilon"] == float(cfg.gate_epsilon))
    return {
        "space": "scaled features ((value - train mean) / train std), L-inf norm",
        "attack": "ART FGSM and PGD (white-box gradients, L-inf)",
        "rows": int(len(y)), "clean": clean, "curve": points,
        "gate_epsilon": float(cfg.gate_epsilon), "gate_attack": "pgd",
        "accuracy_drop": round(clean["accuracy"] - gate_point["pgd_accuracy"], 6),
        **drop_interval(y, p_clean, p_gate, seed),
        "auc_drop": round(clean["auc"] - gate_point["pgd_auc"], 6),
        "frozen_inputs": bounds.frozen_reasons,
        "attacked_inputs": [f["name"] for f in bounds.numeric],
        "validity": checks,
    }


def plot_curve(report: dict, path) -> None:
    """robustness_curve.png: accuracy and AUC against epsilon, FGSM dashed, PGD solid."""
    from z4_assets.core.plots import figure, save_png

    eps = [0.0] + [p["epsilon"] for p in report["curve"]]
    attacks = [(a, s) for a, s in (("fgsm", "--"), ("pgd", "-"), ("hopskipjump", "-"))
               if report["curve"] and f"{a}_accuracy" in report["curve"][0]]
    with figure(1, 2, figsize=(9, 3.6)) as (fig, axes):
        for ax, metric in zip(axes, ("accuracy", "auc")):
            if report.get("refused"):
                ax.text(0.5, 0.5, "not attacked:\n" + report["refused"][:80], ha="center", va="center", wrap=True)
            for attack, style in attacks:
                ys = [report["clean"][metric]] + [p[f"{attack}_{metric}"] for p in report["curve"]]
                ax.plot(eps, ys, style, marker="o", label={"hopskipjump": "HopSkipJump"}.get(attack, attack.upper()))
            if report.get("gate_epsilon") is not None:
                ax.axvline(report["gate_epsilon"], color="grey", lw=0.8, ls=":")
            ax.set_xlabel("epsilon (L-inf, std units)")
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
            if attacks:
                ax.legend()
        named = f"\n{report['caption']}" if report.get("caption") else ""
        fig.suptitle(f"Robustness on {report['rows']} test rows (valid, frozen inputs kept); dotted: the gate's "
                     f"epsilon {report['gate_epsilon']}{named}", fontsize=10)
        fig.tight_layout()
        save_png(fig, path, ROBUSTNESS_DPI)
