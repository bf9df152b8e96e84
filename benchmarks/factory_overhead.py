"""Orchestrated vs bare: the whole model_factory job through the Dagster CLI against bare_factory.py.

Both sides are fresh interpreters started the same way, in a fresh temp folder holding a
Dagster home, a Z3 root with the bundled sample registered, a factory root, a signing key and
an MLflow sqlite file, so each pays the same imports, the same MLflow schema creation and the
same disk. The SBOM cache is shared by every sample of both sides (the first pair warms it).

Both sides run every stage of the stage table with the same stage functions: the Dagster side
is `dagster job execute -j model_factory` for the sample's partition, the bare side calls the
functions in order (bare_factory.py).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

from measure import DATASET_ID, REPO, SAMPLE, clean_env, median, run_timed, spread

DAGSTER = [sys.executable, "-m", "dagster"]
DEFS = ["-m", "z4_assets.definitions"]
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}  # what model_factory pins
BARE_SCRIPT = Path(__file__).with_name("bare_factory.py")
_DURATION = r"((?:\d+h)?(?:\d+m(?!s))?(?:[\d.]+(?:ms|s))?)"
_ALL_STEPS = re.compile(r"Finished steps in process \(pid: \d+\) in " + _DURATION)
_ONE_STEP = re.compile(r'Finished execution of step "(\w+)" in ' + _DURATION)


def _seconds(text: str) -> float:
    """Dagster's format_duration back to seconds: 533ms, 2.1s, 4m52s, 1h4m."""
    total = 0.0
    for value, unit in re.findall(r"([\d.]+)(ms|h|m|s)", text):
        total += float(value) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


@functools.cache
def _train_defaults() -> str:
    from z4_assets.assets.model import TrainConfig

    return json.dumps(TrainConfig().model_dump())


def dagster_step_seconds(tmp: Path, log_text: str) -> tuple[float | None, dict]:
    """(first step start to last step end, seconds per step) from the run's event log in TMP.

    Read from the sqlite event log (the repo's dagster.yaml keeps one db per run); the console
    log is the fallback, since other writers to stderr can break its lines.
    """
    import datetime as dt

    dbs = [p for p in tmp.glob(".dagster_home/storage/history/runs/*.db") if p.name != "index.db"]
    if len(dbs) == 1:
        with sqlite3.connect(dbs[0]) as db:
            rows = db.execute("SELECT dagster_event_type, step_key, timestamp FROM event_logs WHERE "
                              "dagster_event_type IN ('STEP_START', 'STEP_SUCCESS') ORDER BY id").fetchall()
        start, steps, first, last = {}, {}, None, None
        for kind, step, stamp in rows:
            t = dt.datetime.fromisoformat(stamp).timestamp()
            if kind == "STEP_START":
                start[step], first = t, first if first is not None else t
            elif step in start:
                steps[step], last = t - start[step], t
        if steps:
            return last - first, steps
    m = _ALL_STEPS.search(log_text)
    return (_seconds(m.group(1)) if m else None,
            {name: _seconds(d) for name, d in _ONE_STEP.findall(log_text)})


def train_defaults() -> dict:
    """TrainConfig's defaults, read from the asset so the bare script trains the same model."""
    return json.loads(_train_defaults())


def plan() -> dict:
    """The stages both sides run (the stage table's), and the Dagster command that runs them."""
    from z4_assets.core.stages import STAGES
    from z4_assets.definitions import defs

    job = defs.resolve_job_def("model_factory")
    in_job = sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys)
    stages = [s.asset for s in STAGES]
    if set(in_job) != set(stages):
        raise RuntimeError(f"model_factory runs {in_job}, the stage table names {stages}")
    return {"stages": stages, "job_assets": in_job, "run_config": {},
            "command": [*DAGSTER, "job", "execute", *DEFS, "-j", "model_factory"]}


def prepare(tmp: Path, cache: Path) -> dict:
    """A fresh Dagster home (the sample's partition added), Z3 root, keys, factory root and MLflow db under TMP."""
    import dagster as dg

    from z4_assets.core.broker import keygen
    from z4_assets.core.packaging import keygen as signing_keygen
    from z4_assets.core.z3 import add_snapshot
    from z4_assets.partitions import snapshots

    home = tmp / "dagster_home"
    home.mkdir()
    # The repo's instance config; its storage paths are relative, so with cwd=TMP (both sides)
    # Dagster's sqlite storage, MLflow's ./mlruns artifacts and everything else stay in TMP.
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    ref, _ = add_snapshot(tmp / "z3", DATASET_ID, SAMPLE / "contract.yaml", SAMPLE / "data.csv",
                          dataset_config=SAMPLE / "dataset.yaml")
    here = os.getcwd()
    os.chdir(tmp)  # the instance's storage paths are relative to where the job runs
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions(snapshots.name, [ref.label])
    finally:
        os.chdir(here)
    key_file, _ = keygen(tmp / "keys" / "pseudonym.key")  # both sides read through the access broker
    signing_key, _ = signing_keygen(tmp / "keys" / "signing.pem")
    return clean_env(DAGSTER_HOME=str(home), Z4_Z3_ROOT=str(tmp / "z3"),
                     Z4_FACTORY_ROOT=str(tmp / "factory"), Z4_PSEUDONYM_KEY_FILE=str(key_file),
                     Z4_SIGNING_KEY=str(signing_key), Z4_CACHE_ROOT=str(cache),
                     MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}"), ref.label


def evidence(tmp: Path) -> dict:
    """What the run left behind: verdicts per stage, the weights digest, what MLflow holds."""
    runs = sorted((tmp / "factory" / "runs").iterdir())
    if len(runs) != 1:
        raise RuntimeError(f"expected one factory run under {tmp}, found {len(runs)}")
    run = runs[0]
    gates = {p.parent.name: all(g["passed"] for g in json.loads(p.read_text()))
             for p in sorted(run.glob("*/gates.json"))}
    config = run / "model" / "model_config.json"
    digest = json.loads(config.read_text())["state_dict_sha256"] if config.is_file() else None
    with sqlite3.connect(tmp / "mlflow.db") as db:
        status = [r[0] for r in db.execute("SELECT status FROM runs")]
        params = db.execute("SELECT COUNT(*) FROM params").fetchone()[0]
        metrics = db.execute("SELECT COUNT(*) FROM latest_metrics").fetchone()[0]
        versions = db.execute("SELECT COUNT(*) FROM model_versions").fetchone()[0]
        tags = db.execute("SELECT COUNT(*) FROM tags WHERE key NOT LIKE 'mlflow.%'").fetchone()[0]
    artifacts = sum(1 for p in (tmp / "mlruns").rglob("*") if p.is_file()) if (tmp / "mlruns").is_dir() else 0
    files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    return {"gates_passed": gates, "digest": digest, "run_files": files, "mlflow_status": status,
            "mlflow_params": params, "mlflow_metrics": metrics, "mlflow_artifacts": artifacts,
            "mlflow_tags": tags, "model_versions": versions}


def run_once(side: str, hp: dict, how: dict) -> dict:
    """One timed run of SIDE ("bare" or "dagster") in a fresh temp folder, deleted afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=f"z4bench-{side}-"))
    try:
        env, partition = prepare(tmp, how["cache"])
        if side == "dagster":
            cmd, run_config = list(how["command"]), dict(how["run_config"])
            cmd += ["--tags", json.dumps({"dagster/partition": partition})]
            changed = {k: v for k, v in hp.items() if train_defaults().get(k) != v}
            if changed:  # the keys that differ from TrainConfig's defaults
                run_config["ops"] = {"trained_model": {"config": changed}}
            if run_config:  # JSON is YAML
                (tmp / "run.yaml").write_text(json.dumps(run_config))
                cmd += ["-c", str(tmp / "run.yaml")]
            seconds, proc = run_timed(cmd, env=env, cwd=tmp)
            inner, steps = dagster_step_seconds(tmp, proc.stdout + proc.stderr)
        else:
            seconds, proc = run_timed([sys.executable, str(BARE_SCRIPT), "--hp", json.dumps(hp)],
                                      env=env, cwd=tmp)
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            inner, steps = out["work_s"], out["steps_s"]
        return {"side": side, "seconds": seconds, "cpu_seconds": proc.cpu_seconds,
                "load_before": proc.load_before,
                "background_cores": proc.background_cores, "waited_for_idle_s": proc.waited_for_idle_s,
                "inner_seconds": inner, "steps_s": steps,
                **evidence(tmp)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def import_time(repeats: int) -> dict:
    """Fresh-interpreter time of loading the definitions, next to a bare interpreter start."""
    env = clean_env()
    load = [run_timed([sys.executable, "-c", "import z4_assets.definitions"], env=env)[0]
            for _ in range(repeats)]
    bare = [run_timed([sys.executable, "-c", "pass"], env=env)[0] for _ in range(repeats)]
    return {"definitions_import_s": spread(load), "python_startup_s": spread(bare)}


def run(repeats: int, warmup: bool = True, train_threads: int | None = None, log=print) -> dict:
    """REPEATS interleaved pairs (bare, dagster, ...), after one untimed warm-up pair.

    TRAIN_THREADS overrides TrainConfig.threads on both sides (the job gets it as run config).
    """
    how = {**plan(), "cache": Path(tempfile.mkdtemp(prefix="z4bench-cache-"))}
    log(f"  stages {', '.join(how['stages'])}: {' '.join(how['command'][1:])}")
    hp = train_defaults()
    if train_threads:
        hp["threads"] = train_threads
    if warmup:
        log("  warm-up pair (not counted)")
        run_once("bare", hp, how)
        run_once("dagster", hp, how)
    samples = {"bare": [], "dagster": []}
    for i in range(repeats):
        for side in ("bare", "dagster"):
            r = run_once(side, hp, how)
            samples[side].append(r)
            steps = " ".join(f"{k} {v:.2f}" for k, v in r["steps_s"].items())
            log(f"  repeat {i + 1}/{repeats} {side:<7} {r['seconds']:6.2f} s wall, "
                f"{r['cpu_seconds']:5.2f} s cpu, others {r['background_cores'] or 0:.2f} cores; {steps}")
    secs = {side: [r["seconds"] for r in rs] for side, rs in samples.items()}
    digests = {r["digest"] for rs in samples.values() for r in rs}
    same_mlflow = len({(r["mlflow_params"], r["mlflow_metrics"], r["mlflow_tags"], r["mlflow_artifacts"],
                        r["model_versions"]) for rs in samples.values() for r in rs}) == 1
    all_passed = all(v for rs in samples.values() for r in rs for v in r["gates_passed"].values())
    result = {
        "bare_s": spread(secs["bare"]), "dagster_s": spread(secs["dagster"]),
        "ratio_dagster_over_bare": median(secs["dagster"]) / median(secs["bare"]),
        "pairwise_ratio_median": median([d / b for b, d in zip(secs["bare"], secs["dagster"])]),
        "bare_cpu_s": median([r["cpu_seconds"] for r in samples["bare"]]),
        "dagster_cpu_s": median([r["cpu_seconds"] for r in samples["dagster"]]),
        "bare_in_script_work_s": median([r["inner_seconds"] for r in samples["bare"]]),
        "dagster_steps_s": median([r["inner_seconds"] for r in samples["dagster"]
                                   if r["inner_seconds"] is not None]),
        "background_cores": median([r["background_cores"] for rs in samples.values() for r in rs
                                    if r["background_cores"] is not None]),
        "same_files": len({tuple(r["run_files"]) for rs in samples.values() for r in rs}) == 1,
        "same_steps": all(list(r["steps_s"]) == how["stages"] for rs in samples.values() for r in rs),
        "same_model_digest": len(digests) == 1 and None not in digests,
        "same_mlflow_counts": same_mlflow, "all_gates_passed": all_passed,
        "runs": samples, "train_hp": hp, "warmup": warmup, **{k: v for k, v in how.items() if k != "cache"},
    }
    shutil.rmtree(how["cache"], ignore_errors=True)
    result.update(import_time(max(repeats, 3)))
    return result
