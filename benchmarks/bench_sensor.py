"""One z3_snapshot_sensor tick over a Z3 root holding 1,000 snapshots (target: < 1 s).

    python benchmarks/bench_sensor.py              # 1,000 snapshots, 20 repeats
    python benchmarks/bench_sensor.py --snapshots 5000 --repeats 5

The root is a local folder of real snapshot folders (a small parquet file, the sample
contract and a manifest each, 10 datasets); the instance is a real sqlite DagsterInstance.
Timed: the sensor's evaluation, i.e. what counts against a tick. Cases:
  cold     - every snapshot is new: 1,000 manifests read, 2,000 files hashed, 1,000 requests;
  steady   - nothing new (cursor digest unchanged): the listing only;
  one-new  - one snapshot dropped among the known ones: listing, catalog query, one verify;
  no-cursor - the cursor was lost (sensor reset) and nothing is new: listing and catalog query.
Prints medians and writes benchmarks/results/sensor.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from measure import SAMPLE, machine, median, spread  # noqa: E402

TARGET_SECONDS = 1.0


def make_snapshot(root: Path, i: int, at: datetime) -> None:
    """A complete snapshot folder with its own data (so its own content key)."""
    import pandas as pd

    from z4_assets.core.files import atomic_write_json, sha256_file

    dataset = f"bench_ds_{i % 10}"
    snap = f"{at:%Y%m%dT%H%M%S}{at.microsecond:06d}Z-{i:08d}"
    d = root / dataset / snap
    d.mkdir(parents=True)
    pd.DataFrame({"id": range(i, i + 20), "x": [float(i)] * 20}).to_parquet(d / "data.parquet", index=False)
    shutil.copyfile(SAMPLE / "contract.yaml", d / "contract.yaml")
    atomic_write_json(d / "manifest.json", {
        "schema_version": 1, "dataset_id": dataset, "snapshot_id": snap,
        "snapshot_at": at.isoformat().replace("+00:00", "Z"), "hash": sha256_file(d / "data.parquet"),
        "hash_algorithm": "sha256", "data_file": "data.parquet", "row_count": 20, "column_count": 2,
        "feature_groups": {}, "time_range": None, "contract_file": "contract.yaml",
        "contract_hash": sha256_file(d / "contract.yaml")})


def evaluate(instance, store, cursor):
    """One timed evaluation; the daemon's part (registering partitions) is applied after, untimed."""
    import dagster as dg

    from z4_assets.sensors.snapshots import z3_snapshot_sensor

    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"z3": store})
    start = time.perf_counter()
    result = z3_snapshot_sensor(context)
    seconds = time.perf_counter() - start
    if isinstance(result, dg.SkipReason):
        return seconds, 0, cursor
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, req.partition_keys)
    return seconds, len(result.run_requests or []), result.cursor


def run(snapshots: int, repeats: int, log=print) -> dict:
    import dagster as dg

    from z4_assets.resources import Z3Store

    work = Path(tempfile.mkdtemp(prefix="z4-bench-sensor-"))
    try:
        root = work / "z3"
        t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
        start = time.perf_counter()
        for i in range(snapshots):
            make_snapshot(root, i, t0 + timedelta(seconds=i))
        log(f"built {snapshots} snapshots in {time.perf_counter() - start:.1f} s")
        (work / "home").mkdir()
        store = Z3Store(root=str(root))
        out = {"snapshots": snapshots, "repeats": repeats}
        with dg.instance_for_test(temp_dir=str(work / "home")) as instance:
            cold, requested, cursor = evaluate(instance, store, None)
            assert requested == snapshots, requested
            out["cold"] = {"seconds": cold, "run_requests": requested}
            log(f"cold tick ({snapshots} new): {cold:.3f} s")
            out["cursor_bytes"] = len(cursor)

            steady = []
            for _ in range(repeats):
                s, n, cursor = evaluate(instance, store, cursor)
                assert n == 0
                steady.append(s)
            out["steady"] = spread(steady)
            log(f"steady tick (nothing new): median {median(steady) * 1000:.1f} ms")

            one_new = []
            for k in range(repeats):
                make_snapshot(root, snapshots + k, t0 + timedelta(days=1, seconds=k))
                s, n, cursor = evaluate(instance, store, cursor)
                assert n == 1, n
                one_new.append(s)
            out["one_new"] = spread(one_new)
            log(f"tick with one new snapshot: median {median(one_new) * 1000:.1f} ms")

            lost = []
            for _ in range(repeats):
                s, n, _ = evaluate(instance, store, None)
                assert n == 0
                lost.append(s)
            out["no_cursor"] = spread(lost)
            log(f"tick with the cursor lost, nothing new: median {median(lost) * 1000:.1f} ms")
        out["target_seconds"] = TARGET_SECONDS
        out["verdicts"] = {k: ("pass" if (out[k]["median"] if "median" in out[k] else out[k]["seconds"])
                               < TARGET_SECONDS else "FAIL") for k in ("cold", "steady", "one_new", "no_cursor")}
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--snapshots", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", type=Path, default=HERE / "results" / "sensor.json")
    args = p.parse_args(argv)
    results = {"started_at": datetime.now(timezone.utc).isoformat(), "machine": machine(),
               **run(args.snapshots, args.repeats, log=lambda m: print(m, file=sys.stderr, flush=True))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'case':<10} {'median s':>9}  target < {TARGET_SECONDS:g} s")
    for case in ("cold", "steady", "one_new", "no_cursor"):
        r = results[case]
        print(f"{case:<10} {r.get('median', r.get('seconds')):>9.4f}  {results['verdicts'][case]}")
    print(f"cursor: {results['cursor_bytes']} bytes; wrote {args.out}")
    return 0 if all(v == "pass" for v in results["verdicts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
