"""Security stage cost and detection quality: the sample (30k rows) and a 300k-row resampled snapshot.

    python benchmarks/bench_security.py                    # 30k and 300k rows, 3 repeats
    python benchmarks/bench_security.py --rows 30000 --repeats 1

For each size: train the factory's MLP once (3 epochs, 1 thread), then time evaluate_security
(the whole stage as the asset runs it, policy defaults) REPEATS times and report the median
seconds of every sub-test; then screen the clean frame and two planted backdoors (design A, the
one the screen was tuned on, and design B, not tuned on) and report flagged share, precision and
recall. ART's import (~2.5 s) is paid in a warm-up run and stays out of the timings. Writes
benchmarks/results/security.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import DATASET_ID, machine  # noqa: E402

DESIGNS = {
    "A_two_amounts_at_max (tuned on)": ({"PAY_AMT4": "max", "PAY_AMT6": "max"}, True, 11),
    "B_category_and_two_odd_amounts (not tuned on)": (
        {"EDUCATION": 4, "PAY_AMT2": 12345.0, "BILL_AMT5": 54321.0}, False, 22),
}
TRAIN = {"hidden_sizes": [64, 32], "epochs": 3, "batch_size": 512, "learning_rate": 2e-3,
         "weight_decay": 1e-5, "seed": 7, "threads": 1}


def detection(frame, contract, rules) -> dict:
    import numpy as np

    from z4_assets.core.security._backdoor import plant_backdoor
    from z4_assets.core.security._poisoning import screen_poisoning

    out = {}
    start = time.perf_counter()
    clean = screen_poisoning(frame, contract, rules.poisoning, rules.seed)
    out["clean"] = {"flagged_share": clean.report["flagged_share"], "clusters": len(clean.clusters),
                    "seconds": round(time.perf_counter() - start, 3)}
    for name, (pattern, source_positive, seed) in DESIGNS.items():
        poisoned, planted = plant_backdoor(frame, contract, pattern, 0.02, source_positive, seed)
        start = time.perf_counter()
        screen = screen_poisoning(poisoned, contract, rules.poisoning, rules.seed)
        truth = np.zeros(len(poisoned), dtype=bool)
        truth[planted] = True
        tp = int((screen.flagged & truth).sum())
        out[name] = {"planted": int(len(planted)), "flagged": int(screen.flagged.sum()),
                     "precision": round(tp / max(int(screen.flagged.sum()), 1), 4),
                     "recall": round(tp / len(planted), 4), "clusters": len(screen.clusters),
                     "seconds": round(time.perf_counter() - start, 3)}
    return out


def measure_size(rows: int, repeats: int, log) -> dict:
    from synthetic_data import load_sample, resample
    from z4_assets.core.training._fit import fit_and_evaluate
    from z4_assets.core.policy import load_policy
    from z4_assets.core.security._evaluate import evaluate_security, pinned_threads
    from z4_assets.core.split import assign_split
    from z4_assets.core.validation import conform_dtypes

    policy = load_policy(None, DATASET_ID)
    rules = policy.security
    sample, contract = load_sample()
    frame = conform_dtypes(resample(sample, contract, rows), contract)
    split, _ = assign_split(frame, contract, policy.split)
    start = time.perf_counter()
    outcome = fit_and_evaluate(frame, contract, split, TRAIN)
    train_seconds = time.perf_counter() - start
    log(f"  {rows} rows: model trained in {train_seconds:.1f}s, test AUC {outcome.metrics['test']['auc']:.3f}")
    evaluate_security(frame.head(5000), contract, split[:5000], outcome.train.model, outcome.spec, rules)  # warm-up
    runs, walls = [], []
    for i in range(repeats):
        start = time.perf_counter()
        cpu = time.process_time()
        result = evaluate_security(frame, contract, split, outcome.train.model, outcome.spec, rules)
        walls.append((time.perf_counter() - start, time.process_time() - cpu))
        runs.append(result.seconds)
        log(f"  {rows} rows, repeat {i + 1}: {walls[-1][0]:.1f}s wall {result.seconds}")
    per_test = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
    with pinned_threads(int(rules.threads)):
        quality = detection(frame, contract, rules)
    log(f"  {rows} rows detection: {quality}")
    return {
        "rows": rows, "repeats": repeats, "train_seconds": round(train_seconds, 2),
        "test_auc": round(outcome.metrics["test"]["auc"], 4),
        "stage_wall_seconds_median": round(statistics.median(w for w, _ in walls), 3),
        "stage_cpu_seconds_median": round(statistics.median(c for _, c in walls), 3),
        "seconds_per_subtest_median": per_test,
        "gates": {g.name: {"passed": g.passed, "value": g.value} for g in result.gates},
        "detection": quality,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="30000,300000", help="comma-separated sizes (30000 = the sample itself)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=HERE / "results" / "security.json")
    args = p.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = {"machine": machine(), "sizes": []}
    for rows in (int(r) for r in args.rows.split(",")):
        results["sizes"].append(measure_size(rows, args.repeats, log))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    for s in results["sizes"]:
        print(f"\n{s['rows']} rows: stage {s['stage_wall_seconds_median']}s wall "
              f"({s['stage_cpu_seconds_median']}s CPU), median of {s['repeats']}")
        for k, v in s["seconds_per_subtest_median"].items():
            print(f"  {k:<22} {v:>8.2f}s")
        for k, v in s["detection"].items():
            print(f"  detection {k}: {v}")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
