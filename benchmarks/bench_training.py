"""Training before and after issue 16, side by side in one run, on the same split and machine.

    python benchmarks/bench_training.py              # 30k-row sample, 3 repeats each, interleaved
    python benchmarks/bench_training.py --repeats 5

"before" is the old TrainConfig (8 fixed epochs, no class weights, best validation AUC kept);
"after" is today's TrainConfig() (epoch budget scaled to the data, early stopping on the
validation loss, balanced class weights for an imbalanced target). Reported per version: the
median training time (fit_and_evaluate: features, training, scoring every split), epochs run, and
the test split's operating point. Writes benchmarks/results/training.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from measure import machine, median  # noqa: E402

BEFORE = {"hidden_sizes": [64, 32], "epochs": 8, "batch_size": 512, "learning_rate": 2e-3,
          "weight_decay": 1e-5, "seed": 7, "threads": 1}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import pandas as pd

    from z4_assets.assets.model import TrainConfig
    from z4_assets.core.contract import load_contract
    from z4_assets.core.policy import load_policy
    from z4_assets.core.split import assign_split
    from z4_assets.core.training._fit import fit_and_evaluate
    from z4_assets.core.training._gates import operating_point

    sample = HERE.parent / "z4_assets" / "sample_data" / "taiwan_credit_default"
    contract = load_contract(sample / "contract.yaml")[0]
    df = pd.read_csv(sample / "data.csv")
    split, _ = assign_split(df, contract, load_policy(None, contract.dataset_id).split)
    versions = {"before": BEFORE, "after": TrainConfig().model_dump()}
    fit_and_evaluate(df.iloc[:2000], contract, split[:2000], BEFORE)   # warm-up: imports, kernels
    times = {k: [] for k in versions}
    out = {}
    for _ in range(args.repeats):
        for name, hp in versions.items():   # interleaved, so load on the shared box hits both alike
            t = time.perf_counter()
            fit = fit_and_evaluate(df, contract, split, hp)
            times[name].append(time.perf_counter() - t)
            op = operating_point(fit.test_labels, fit.test_scores, 0.5)
            out[name] = {"epochs_run": len(fit.train.history), "best_epoch": fit.train.best_epoch,
                         "test_auc": round(fit.metrics["test"]["auc"], 4), **op}
    for name in versions:
        out[name]["median_s"] = round(median(times[name]), 3)
        out[name]["runs_s"] = [round(t, 3) for t in times[name]]
    out["ratio_after_over_before"] = round(out["after"]["median_s"] / out["before"]["median_s"], 3)
    result = {"rows": len(df), "repeats": args.repeats, "machine": machine(), **out}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "training.json").write_text(json.dumps(result, indent=2, default=float))
    print(json.dumps(result, indent=2, default=float))
    del np


if __name__ == "__main__":
    main()
