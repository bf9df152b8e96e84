"""Hygiene scaling: contract validation and run_hygiene on 30k, 300k and 1M rows.

Each size runs in its own interpreter (this file as a script) so that peak RSS is per size.
Within a size every repeat runs validation, hygiene without a baseline and hygiene against a
baseline (the sample's own profile, as stored after the first accepted run), in that order.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from measure import DATASET_ID, current_rss_mib, median, peak_rss_mib, run_timed, spread

TIMED = ("conform", "validate", "hygiene_no_baseline", "hygiene_baseline")


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def measure_size(rows: int, repeats: int) -> dict:
    """Runs inside the per-size interpreter."""
    from z4_assets.core.hygiene._checks import run_hygiene
    from z4_assets.core.policy import load_policy
    from z4_assets.core.validation import conform_dtypes, validate_contract

    from synthetic_data import load_sample, resample

    policy = load_policy(None, DATASET_ID)
    sample, contract = load_sample()
    sample_df = conform_dtypes(sample, contract)
    validate_contract(sample_df, contract)  # warm-up: pandera's import stays out of the timings
    baseline = {"snapshot": "sample", **run_hygiene(sample_df, contract, policy, None).profile}
    raw = resample(sample, contract, rows)
    del sample, sample_df
    rss_data = current_rss_mib()

    samples = {k: [] for k in TIMED}
    verdicts = {}
    for _ in range(repeats):
        t, df = _timed(conform_dtypes, raw, contract)
        samples["conform"].append(t)
        t, valid = _timed(validate_contract, df, contract)
        samples["validate"].append(t)
        t, fresh = _timed(run_hygiene, df, contract, policy, None)
        samples["hygiene_no_baseline"].append(t)
        t, against = _timed(run_hygiene, df, contract, policy, baseline)
        samples["hygiene_baseline"].append(t)
        verdicts = {"contract_passed": valid.passed, "contract_failures": valid.failure_count,
                    "hygiene_failed_gates": [g.name for g in against.gates if not g.passed],
                    "split_counts": fresh.report["split"]["counts"]}
        del df, valid, fresh, against
    stage = [v + h for v, h in zip(samples["validate"], samples["hygiene_baseline"])]
    return {"rows": rows, "repeats": repeats, "seconds": {k: spread(v) for k, v in samples.items()},
            "stage_s": spread(stage), "stage_s_per_1m_rows": median(stage) / rows * 1e6,
            "rss_after_data_mib": rss_data, "peak_rss_mib": peak_rss_mib(), **verdicts}


def run(sizes: list[int], repeats: int, log=print) -> dict:
    """One interpreter per size, smallest first."""
    per_size = []
    for rows in sizes:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--rows", str(rows),
               "--repeats", str(repeats)]
        wall, proc = run_timed(cmd, timeout=3600)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["process_wall_s"], r["background_cores"] = wall, proc.background_cores
        per_size.append(r)
        log(f"  {rows:>9,} rows: stage {r['stage_s']['median']:.2f} s, "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB ({wall:.0f} s incl. setup)")
    largest, previous = per_size[-1], per_size[-2] if len(per_size) > 1 else None
    growth = (largest["stage_s_per_1m_rows"] / previous["stage_s_per_1m_rows"]) if previous else None
    bg = [r["background_cores"] for r in per_size if r["background_cores"] is not None]
    return {"sizes": per_size, "growth_per_row_largest_over_previous": growth,
            "background_cores": median(bg) if bg else None}


def main() -> int:
    parser = argparse.ArgumentParser(description="one size of the hygiene scaling benchmark")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure_size(args.rows, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
