"""Issue 19's figures: events per factory run, the wall time the HTTP sinks add to a run (side by side,
sink off / sink on, alternating, medians), and the time to drain 10,000 spooled events to a real
receiver on 127.0.0.1 (the test suite's validating receiver, in its own process).

    PYTHONPATH=$PWD python benchmarks/audit_stream.py [--pairs 2] [--drain 10000] [--out FILE]

Each factory run is the sample through the whole factory in process (dg.materialize, the test
suite's fast training), in a fresh temp folder; "off" writes the local chain only, "on" also POSTs
every event (CloudEvents to /events, OpenLineage to /api/v1/lineage) and waits for the 2xx.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CACHE = REPO / "benchmarks" / "results" / "sbom-cache"  # shared by every run (the first one warms it); gitignored


def factory_run(sink: bool) -> dict:
    import pandas as pd

    from z4_assets.core.packaging._signing import keygen
    from z4_assets.core.z3 import add_snapshot
    from z4_assets.resources import FactoryStorage
    from z4_assets_tests.audit_helpers import Receiver, free_port
    from z4_assets_tests.conftest import (DATASET, SAMPLE_CONTRACT, SAMPLE_CSV, SAMPLE_DATASET_CONFIG, make_resources,
                                          run_factory)

    with tempfile.TemporaryDirectory(prefix="z4-audit-bench-") as tmp:
        root = Path(tmp)
        data = root / "data.parquet"
        pd.read_csv(SAMPLE_CSV).to_parquet(data, index=False)
        add_snapshot(root / "z3", DATASET, SAMPLE_CONTRACT, data, dataset_config=SAMPLE_DATASET_CONFIG)
        key, _ = keygen(root / "keys" / "signing.pem")
        resources = make_resources(root, root / "z3", key, CACHE)
        receiver = None
        if sink:
            receiver = Receiver(free_port(), root / "received.jsonl").start()
            resources["storage"] = FactoryStorage(root=str(root / "factory"), cache_root=str(CACHE),
                                                  audit_url=receiver.audit_url, openlineage_url=receiver.lineage_url)
        started = time.perf_counter()
        result = run_factory(resources)
        wall = time.perf_counter() - started
        trail = resources["storage"].audit()
        events = trail.events()
        out = {"sink": sink, "success": result.success, "wall_s": round(wall, 2), "events": len(events),
               "lineage_events": sum(e["type"] == "io.z4.factory.lineage.run" for e in events),
               "chain_bytes": trail.chain.stat().st_size}
        if receiver is not None:
            out["received"] = len(receiver.records())
            out["queued"] = sum(trail.queued().values())
            receiver.kill()
        return out


def drain(n: int) -> dict:
    from z4_assets.core.audit import AuditTrail
    from z4_assets_tests.audit_helpers import Receiver, free_port

    with tempfile.TemporaryDirectory(prefix="z4-audit-drain-") as tmp:
        root = Path(tmp)
        port = free_port()
        trail = AuditTrail(root / "audit", audit_url=f"http://127.0.0.1:{port}/events")
        ids = trail.ids(dagster_run_id="0f6d3c1e-5b7a-4c2e-9d11-8a3b2c1d0e9f", dataset="bench@s1")
        t = time.perf_counter()
        batch = [("gate.evaluated", {"stage": "hygiene_report", "gate": f"g{i}", "verdict": "PASS",
                                     "measured": i / n, "threshold": 0.5, "comparison": "<="}, "") for i in range(n)]
        for i in range(0, n, 100):
            trail.emit_many(batch[i:i + 100], ids)
        spool_s = time.perf_counter() - t
        assert trail.queued() == {"audit": n}
        receiver = Receiver(port, root / "received.jsonl").start()
        try:
            t = time.perf_counter()
            (report,) = trail.flush(budget_seconds=3600)
            seconds = time.perf_counter() - t
            got = len(receiver.records())
        finally:
            receiver.kill()
        return {"events": n, "spool_s": round(spool_s, 2), "drain_s": round(seconds, 2), "delivered": report.delivered,
                "received": got, "events_per_s": round(n / seconds)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--drain", type=int, default=10_000)
    ap.add_argument("--drains", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    runs = []
    for i in range(args.pairs):
        for sink in ((False, True) if i % 2 == 0 else (True, False)):  # alternate which goes first
            runs.append(factory_run(sink))
            print(json.dumps(runs[-1]), flush=True)
    off = [r["wall_s"] for r in runs if not r["sink"]]
    on = [r["wall_s"] for r in runs if r["sink"]]
    drains = [drain(args.drain) for _ in range(args.drains)]
    for d in drains:
        print(json.dumps(d), flush=True)
    summary = {"runs": runs, "wall_off_median_s": statistics.median(off), "wall_on_median_s": statistics.median(on),
               "ratio_on_off": round(statistics.median(on) / statistics.median(off), 3),
               "events_per_run": sorted({r["events"] for r in runs}),
               "drain": drains, "drain_median_s": statistics.median(d["drain_s"] for d in drains)}
    print(json.dumps({k: v for k, v in summary.items() if k not in ("runs", "drain")}, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
