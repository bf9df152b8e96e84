"""Peak memory and wall time of each asset step in its own process, as one pod per step runs it.

Sizes the requests and limits in deploy/steps.yaml. model_factory's assets run under Dagster's
multiprocess executor (spawn, max_concurrent 1), so each step is a fresh interpreter (imports and all,
as in a step pod); a sampler reads from /proc, every 50 ms, the resident
set of each step process plus its own subprocesses (cyclonedx-py, model-signing: what a pod's memory
cgroup counts) and keeps the peak (never below the child's own VmHWM).
Children are matched to steps by start order. Repeats the run REPEATS times on the bundled sample
(default training config: 8 epochs) and prints one JSON line per step: median and max peak RSS
(MiB) and median step seconds.

    PYTHONPATH=$PWD python benchmarks/step_pod_sizing.py [REPEATS]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "z4_assets" / "sample_data" / "taiwan_credit_default"


def sizing_job():
    """model_factory's selection with one process per step, one step at a time."""
    import dagster as dg

    from z4_assets.core.stages import STAGES
    from z4_assets.definitions import defs
    from z4_assets.partitions import snapshots

    job = dg.define_asset_job("sizing", selection=dg.AssetSelection.assets(*(s.asset for s in STAGES)),
                              partitions_def=snapshots,
                              executor_def=dg.multiprocess_executor.configured(
                                  {"max_concurrent": 1, "start_method": {"spawn": {}}}))
    return dg.Definitions(assets=list(defs.assets), resources=defs.resources, jobs=[job]).resolve_job_def("sizing")


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, resident KiB) for every process, read once per tick from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        table[int(entry)] = (int(stat.rsplit(")", 1)[1].split()[1]), rss)
    return table


def _vmhwm_kib(pid: int) -> int | None:
    """The kernel's own peak resident set of one process (KiB)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _descendants(pid: int, table: dict[int, tuple[int, int]]) -> list[int]:
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        kids = [c for c, (ppid, _) in table.items() if ppid == p]
        out.extend(kids)
        stack.extend(kids)
    return out


def _tree_rss(pid: int, table: dict[int, tuple[int, int]]) -> int:
    """Resident KiB of a process and all its descendants (what a pod's memory cgroup counts)."""
    return sum(table.get(p, (0, 0))[1] for p in [pid, *_descendants(pid, table)])


def run_once(work: Path) -> dict[str, tuple[float, float]]:
    import dagster as dg

    from z4_assets.core.packaging import keygen
    from z4_assets.core.z3 import add_snapshot
    from z4_assets.partitions import snapshots

    keygen(work / "keys" / "signing.pem")
    ref, _ = add_snapshot(work / "z3", "taiwan_credit_default", SAMPLE / "contract.yaml", SAMPLE / "data.csv",
                          dataset_config=SAMPLE / "dataset.yaml")
    seen: dict[int, list] = {}  # pid -> [first seen, peak KiB, cmdline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            table = _process_table()
            for pid in _descendants(os.getpid(), table):
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                rec = seen.setdefault(pid, [time.monotonic(), 0, cmd])
                rec[1] = max(rec[1], _tree_rss(pid, table), _vmhwm_kib(pid) or 0)
            time.sleep(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    (work / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(work / "home")) as instance:
        instance.add_dynamic_partitions(snapshots.name, [ref.label])
        result = dg.execute_job(dg.reconstructable(sizing_job), instance=instance,
                                tags={"dagster/partition": ref.label})
        done.set()
        thread.join()
        assert result.success, "the sizing run failed"
        logs = [r for r in instance.all_logs(result.run_id) if r.dagster_event]
        starts = {r.step_key: r.timestamp for r in logs if r.dagster_event.event_type_value == "STEP_START"}
        ends = {r.step_key: r.timestamp for r in logs if r.dagster_event.event_type_value == "STEP_SUCCESS"}
    order = sorted(starts, key=starts.get)
    workers = [rec for _, rec in sorted(seen.items(), key=lambda kv: kv[1][0])
               if b"spawn_main" in rec[2]]
    assert len(workers) == len(order), f"{len(workers)} step processes for {len(order)} steps"
    return {step: (rec[1] / 1024, ends[step] - starts[step]) for step, rec in zip(order, workers)}


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    results: dict[str, list[tuple[float, float]]] = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="z4-sizing-") as tmp:
            os.environ.update(Z4_Z3_ROOT=f"{tmp}/z3", Z4_FACTORY_ROOT=f"{tmp}/factory",
                              Z4_SIGNING_KEY=f"{tmp}/keys/signing.pem",
                              MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db")
            for step, value in run_once(Path(tmp)).items():
                results.setdefault(step, []).append(value)
    for step, values in results.items():
        rss = [v[0] for v in values]
        print(json.dumps({"step": step, "repeats": repeats, "peak_rss_mib_median": round(statistics.median(rss)),
                          "peak_rss_mib_max": round(max(rss)),
                          "step_s_median": round(statistics.median(v[1] for v in values), 1)}))


if __name__ == "__main__":
    main()
