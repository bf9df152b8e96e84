"""Benchmarks for z4-model-factory: orchestration overhead, hashing throughput, hygiene scaling.

    python benchmarks/run.py              # full run, a few minutes
    python benchmarks/run.py --quick      # smoke test: small sizes, one repeat
    python benchmarks/run.py --repeats 5 --only factory,hashing

Prints a table with every target and its verdict and writes benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import factory_overhead
import hash_throughput
import hygiene_scaling
import report
from measure import IDLE, machine

SECTIONS = ("factory", "hashing", "hygiene")
FULL = {"hash_bytes": 1 << 30, "hygiene_rows": [30_000, 300_000, 1_000_000], "repeats": 3}
QUICK = {"hash_bytes": 256 << 20, "hygiene_rows": [30_000, 100_000], "repeats": 1}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 256 MiB hash file, 30k/100k hygiene rows, 1 repeat, no warm-up")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"repeats per measurement (default {FULL['repeats']}, --quick {QUICK['repeats']})")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {', '.join(SECTIONS)}")
    p.add_argument("--train-threads", type=int, default=None,
                   help="override TrainConfig.threads on both sides of [1] (default: the job's own)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each sample, wait up to SECONDS for other processes to use < 0.25 cores")
    p.add_argument("--table", type=Path, metavar="JSON",
                   help="only print the table of an earlier run's JSON (e.g. benchmarks/results/latest.json)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        print(report.render(json.loads(args.table.read_text())))
        return 0
    plan = dict(QUICK if args.quick else FULL)
    repeats = args.repeats or plan["repeats"]
    IDLE["max_wait_s"] = args.wait_idle
    started = time.perf_counter()
    results: dict = {
        "started_at": datetime.now(timezone.utc).isoformat(), "machine": machine(),
        "config": {**plan, "quick": args.quick, "repeats": repeats, "sections": args.only,
                   "train_threads": args.train_threads, "wait_idle_s": args.wait_idle},
    }

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if "factory" in args.only:
        log("[1] orchestrated vs bare")
        results["factory"] = factory_overhead.run(repeats, warmup=not args.quick,
                                                      train_threads=args.train_threads, log=log)
    if "hashing" in args.only:
        log("[2] sha256 throughput")
        results["hashing"] = hash_throughput.run(plan["hash_bytes"], repeats, log=log)
    if "hygiene" in args.only:
        log("[3] hygiene scaling")
        results["hygiene"] = hygiene_scaling.run(plan["hygiene_rows"], repeats, log=log)

    results["targets"] = report.targets(results)
    results["total_seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(report.render(results))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
