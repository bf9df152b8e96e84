"""How long the build and security lane adds to CI: `z4 ci-gate` run N times, median per gate.

    python benchmarks/ci_gate_time.py --repeats 3

Runs the real CLI from the project root in a subprocess (each run as CI runs it) and reads each
run's build/ci-gate/report.json. Prints medians and min/max; writes benchmarks/results/ci_gate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ci_gate.json")
    args = p.parse_args(argv)
    runs, walls = [], []
    for i in range(args.repeats):
        out = ROOT / "build" / "ci-gate-bench" / str(i)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "z4_assets.cli", "ci-gate", "--out", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=dict(os.environ),
            check=False,
        )
        walls.append(time.perf_counter() - t0)
        if proc.returncode not in (0, 1):
            print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
            return proc.returncode
        runs.append(json.loads((out / "report.json").read_text()))
    gates = [g["name"] for g in runs[0]["gates"]]
    rows = {}
    for name in gates:
        secs = [next(g["seconds"] for g in r["gates"] if g["name"] == name) for r in runs]
        rows[name] = {"median_s": statistics.median(secs), "min_s": min(secs), "max_s": max(secs)}
    rows["whole command (wall, incl. start-up)"] = {
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "max_s": max(walls),
    }
    print(f"z4 ci-gate, {args.repeats} runs, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'gate':<38} {'median s':>9} {'min':>7} {'max':>7}")
    for name, r in rows.items():
        print(f"{name:<38} {r['median_s']:>9.1f} {r['min_s']:>7.1f} {r['max_s']:>7.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeats": args.repeats, "gates": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
