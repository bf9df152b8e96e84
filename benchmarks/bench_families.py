"""Model families side by side in one run (issue 17): training time, gate time and batch scoring.

    python benchmarks/bench_families.py                          # 30k, 300k and 1M rows
    python benchmarks/bench_families.py --sizes 30000 300000 --repeats 3

Per size and family, on the same resampled Taiwan-like frame and split:
- train: fit_and_evaluate (feature spec, fit, scoring every split), median of REPEATS;
- gates: the model-dependent gates on that model: export + artifact_parity, performance (AUC/KS
  bootstrap intervals, operating point), evasion (PGD, or HopSkipJump for gbdt), membership inference
  and output integrity, with the packaged policy's sample sizes (the poisoning screen and fairness do
  not depend on the family and are left out);
- scoring: rows/s of the pyfunc's predict (Z4PackageModel.predict over the artifact loaded from disk:
  feature transform + onnxruntime/safetensors; load_context's verification is a one-off and not in
  the loop) against the native model's predict_proba on the same rows (same feature transform),
  median of REPEATS, interleaved.
Writes benchmarks/results/families.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from measure import machine, median  # noqa: E402

FAMILIES = {"logistic": {}, "gbdt": {}, "mlp": {"epochs": 8}}


def gate_seconds(fit, df, contract, split, policy, tmp: Path) -> dict:
    import numpy as np

    from z4_assets.core.security._evasion import feature_bounds, robustness_curve
    from z4_assets.core.security._integrity import output_integrity
    from z4_assets.core.security._privacy import membership_inference
    from z4_assets.core.split import TEST, TRAIN
    from z4_assets.core.training._fit import parity_gate, performance_gates

    out = {}
    t = time.perf_counter()
    artifact = fit.model.save(tmp)
    parity, _ = parity_gate(fit, artifact, policy.models.parity_tolerance)
    out["parity"] = time.perf_counter() - t
    t = time.perf_counter()
    performance_gates(fit, policy)
    out["performance"] = time.perf_counter() - t
    sec = policy.security
    rng = np.random.default_rng(sec.seed)
    test, train = np.flatnonzero(split == TEST), np.flatnonzero(split == TRAIN)
    y = (df[contract.target.column] == contract.target.positive).to_numpy(dtype=np.int64)
    rows = np.sort(rng.choice(test, min(len(test), sec.evasion.sample_rows), replace=False))
    t = time.perf_counter()
    ev = robustness_curve(fit.model, fit.spec.transform(df.iloc[rows]), y[rows], feature_bounds(fit.spec, contract, df),
                          sec.evasion, sec.seed)
    out["evasion"] = time.perf_counter() - t
    m_rows = np.sort(rng.choice(train, min(len(train), 20000), replace=False))
    o_rows = np.sort(rng.choice(test, min(len(test), 20000), replace=False))
    t = time.perf_counter()
    membership_inference(fit.model, fit.spec.transform(df.iloc[m_rows]), y[m_rows], fit.spec.transform(df.iloc[o_rows]),
                         y[o_rows], sec.membership, sec.seed)
    out["membership"] = time.perf_counter() - t
    t = time.perf_counter()
    i_rows = np.sort(rng.choice(test, min(len(test), sec.integrity.sample_rows), replace=False))
    output_integrity(fit.model, fit.spec, contract, df.iloc[i_rows], df, sec.integrity, sec.seed)
    out["integrity"] = time.perf_counter() - t
    out = {k: round(v, 3) for k, v in out.items()}
    out["total"] = round(sum(out.values()), 3)
    out["parity_max_abs_diff"] = parity.value
    out["evasion_attack"], out["evasion_accuracy_drop"] = ev.get("gate_attack"), ev.get("accuracy_drop")
    return out


def throughput(fit, df, artifact: Path, config: dict, repeats: int) -> dict:
    from z4_assets.core.serving import Z4PackageModel
    from z4_assets.core.training._artifact import load_scorer

    served = Z4PackageModel()
    served.model, served.spec = load_scorer(artifact.parent, config), fit.spec
    rows = df.drop(columns=[c for c in df.columns if c not in {col["name"] for col in fit.spec.columns}])
    pyfunc, native = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        served.predict(None, rows)
        pyfunc.append(time.perf_counter() - t)
        t = time.perf_counter()
        fit.model.predict_proba(fit.spec.transform(rows))
        native.append(time.perf_counter() - t)
    n = len(rows)
    return {"rows": n, "pyfunc_rows_per_s": round(n / median(pyfunc)), "native_rows_per_s": round(n / median(native)),
            "pyfunc_over_native": round(median(native) / median(pyfunc), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[30000, 300000, 1000000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    args = ap.parse_args()

    from synthetic_data import load_sample, resample
    from z4_assets.core.policy import SplitPolicy, load_policy
    from z4_assets.core.split import assign_split, row_hashes
    from z4_assets.core.training._families import resolve_family
    from z4_assets.core.training._fit import fit_and_evaluate

    base, contract = load_sample()
    policy = load_policy(None, contract.dataset_id)
    results = {"machine": machine(), "sizes": {}}
    for size in args.sizes:
        df = resample(base, contract, size)
        split, _ = assign_split(df, contract, SplitPolicy(**policy.split.model_dump()),
                                row_hashes(df, contract.candidate_features))
        results["sizes"][size] = {}
        for name in args.families:
            fam = resolve_family(name, FAMILIES[name])
            times, fit = [], None
            for _ in range(args.repeats):
                t = time.perf_counter()
                fit = fit_and_evaluate(df, contract, split, fam)
                times.append(time.perf_counter() - t)
            with tempfile.TemporaryDirectory() as tmp:
                gates = gate_seconds(fit, df, contract, split, policy, Path(tmp))
                artifact = Path(tmp) / fit.model.artifact
                config = {"family": name, "artifact": artifact.name, "state_dict_sha256": fit.digest,
                          "attack": fit.model.attack}
                if name == "logistic":
                    config["scorecard"] = {"coefficients": fit.facts["coefficients"], "intercept": fit.facts["intercept"]}
                score = throughput(fit, df, artifact, config, args.repeats)
            row = {"train_seconds_median": round(median(times), 3), "train_seconds": [round(x, 3) for x in times],
                   "test_auc": round(fit.metrics["test"]["auc"], 4), "gate_seconds": gates, "scoring": score}
            results["sizes"][size][name] = row
            print(size, name, json.dumps(row), flush=True)
    out = HERE / "results" / "families.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
