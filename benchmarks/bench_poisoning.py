"""The poisoning screen on clean tables it was never tuned on, and on triggers planted into each.

    python benchmarks/bench_poisoning.py            # every table of z4_assets_tests/clean_tables.py
    python benchmarks/bench_poisoning.py --tables wooldridge_mroz,taiwan_second_half

For each table: the share of rows flagged on the clean table (must be <= 0.5%), the number of natural
regions reported (explained by one feature's natural value, never flagged), and, for each of two
trigger designs chosen from the table's columns (core/security/_backdoor.generic_designs), the
precision and recall of the flags against the planted rows (2% of the rows, at least 60). Policy
defaults, one thread. Writes benchmarks/results/poisoning.json and prints a Markdown table.
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

from measure import DATASET_ID, machine  # noqa: E402


def measure_table(name: str, loader, sec) -> dict:
    import numpy as np

    from z4_assets.core.security._backdoor import generic_designs, plant_backdoor
    from z4_assets.core.security._poisoning import screen_poisoning

    df, contract = loader()
    start = time.perf_counter()
    clean = screen_poisoning(df, contract, sec.poisoning, sec.seed)
    row = {"table": name, "rows": len(df), "clean_flagged_share": clean.report["flagged_share"],
           "clean_clusters": len(clean.clusters), "natural_regions": clean.report["natural_regions_total"],
           "clean_seconds": round(time.perf_counter() - start, 2), "designs": {}}
    for design, (pattern, source_positive) in generic_designs(df, contract).items():
        poisoned, planted = plant_backdoor(df, contract, pattern, max(0.02, 60 / len(df)), source_positive, 5)
        screen = screen_poisoning(poisoned, contract, sec.poisoning, sec.seed)
        truth = np.zeros(len(poisoned), dtype=bool)
        truth[planted] = True
        tp = int((screen.flagged & truth).sum())
        row["designs"][design] = {
            "pattern": {k: str(v) for k, v in pattern.items()}, "planted": int(len(planted)),
            "flagged": int(screen.flagged.sum()), "precision": round(tp / max(int(screen.flagged.sum()), 1), 3),
            "recall": round(tp / len(planted), 3)}
    return row


def main(argv: list[str] | None = None) -> int:
    from z4_assets.core.policy import load_policy
    from z4_assets.core.security._evaluate import pinned_threads
    from z4_assets_tests.clean_tables import clean_tables

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", default="", help="comma-separated names (default: all)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "poisoning.json")
    args = p.parse_args(argv)
    tables = clean_tables()
    names = [n for n in args.tables.split(",") if n] or list(tables)
    sec = load_policy(None, DATASET_ID).security
    rows = []
    with pinned_threads(1):
        for name in names:
            rows.append(measure_table(name, tables[name], sec))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "tables": rows}, indent=2) + "\n")
    print("| table | rows | clean: flagged share | natural regions | two_extremes P / R | category_and_odd_value P / R |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        d = r["designs"]
        cell = {k: f"{v['precision']:.2f} / {v['recall']:.2f} ({v['planted']} planted)" for k, v in d.items()}
        print(f"| {r['table']} | {r['rows']} | {100 * r['clean_flagged_share']:.2f}% | {r['natural_regions']} | "
              f"{cell.get('two_extremes', 'n/a')} | {cell.get('category_and_odd_value', 'n/a')} |")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
