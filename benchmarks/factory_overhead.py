"""Orchestrated vs bare: the model_factory job through the Dagster CLI against bare_factory.py.

Both sides are fresh interpreters started the same way, in a fresh temp folder holding a
Dagster home, a Z3 root with the bundled sample registered, a factory root, a signing key and
an MLflow sqlite file, so each pays the same imports, the same MLflow schema creation and the
same disk.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

from measure import DATASET_ID, REPO, SAMPLE, clean_env, median, run_timed, spread

DAGSTER_CMD = [sys.executable, "-m", "dagster", "job", "execute", "-m", "z4_assets.definitions",
               "-j", "model_factory"]
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
    from z4_assets.training.assets import TrainConfig

    return json.dumps(TrainConfig().model_dump())


def train_defaults() -> dict:
    """TrainConfig's defaults, read from the asset so the bare script trains the same model."""
    return json.loads(_train_defaults())


def check_mirror() -> list[str]:
    """The job's assets, in bare_stages order; raises when the two have drifted apart."""
    from z4_assets.definitions import defs

    import bare_stages

    job = defs.resolve_job_def("model_factory")
    in_job = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    mirrored = [name for name, _ in bare_stages.STAGES]
    if in_job != set(mirrored):
        raise RuntimeError(f"model_factory has assets {sorted(in_job)} but bare_stages.py mirrors "
                           f"{mirrored}: update bare_stages.py before comparing")
    return mirrored


@functools.cache
def sbom_cache() -> Path:
    """One SBOM for this environment, made once (cyclonedx-py takes ~15 s) and copied into each
    run's factory cache, so both sides run in the steady state where that cache is warm."""
    from z4_assets.core.sbom import environment_fingerprint, generate_sbom

    d = Path(tempfile.mkdtemp(prefix="z4bench-sbom-"))
    generate_sbom(d / "sbom.json", d)
    return d / f"sbom-{environment_fingerprint()}.json"


def prepare(tmp: Path) -> dict:
    """A fresh Dagster home, Z3 root (sample registered), factory root (SBOM cache warm), signing
    key pair and MLflow db under TMP."""
    from z4_assets.core.packaging.signing import keygen
    from z4_assets.core.z3 import add_snapshot

    home = tmp / "dagster_home"
    home.mkdir()
    # The repo's instance config; its storage paths are relative, so with cwd=TMP (both sides)
    # Dagster's sqlite storage, MLflow's ./mlruns artifacts and everything else stay in TMP.
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    add_snapshot(tmp / "z3", DATASET_ID, SAMPLE / "contract.yaml", SAMPLE / "data.csv")
    (tmp / "factory" / "cache").mkdir(parents=True)
    shutil.copyfile(sbom_cache(), tmp / "factory" / "cache" / sbom_cache().name)
    private_key, _ = keygen(tmp / "keys" / "signing.pem")
    return clean_env(DAGSTER_HOME=str(home), Z4_Z3_ROOT=str(tmp / "z3"),
                     Z4_FACTORY_ROOT=str(tmp / "factory"), Z4_SIGNING_KEY=str(private_key),
                     MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}")


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
    artifacts = sum(1 for p in (tmp / "mlruns").rglob("*") if p.is_file()) if (tmp / "mlruns").is_dir() else 0
    return {"gates_passed": gates, "digest": digest, "mlflow_status": status,
            "mlflow_params": params, "mlflow_metrics": metrics, "mlflow_artifacts": artifacts,
            "model_versions": versions}


def run_once(side: str, hp: dict) -> dict:
    """One timed run of SIDE ("bare" or "dagster") in a fresh temp folder, deleted afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=f"z4bench-{side}-"))
    try:
        env = prepare(tmp)
        if side == "dagster":
            cmd = list(DAGSTER_CMD)
            changed = {k: v for k, v in hp.items() if train_defaults().get(k) != v}
            if changed:  # the keys that differ from TrainConfig's defaults, as run config
                (tmp / "run.yaml").write_text(json.dumps({"ops": {"trained_model": {"config": changed}}}))
                cmd += ["-c", str(tmp / "run.yaml")]
            seconds, proc = run_timed(cmd, env=env, cwd=tmp)
            log_text = proc.stdout + proc.stderr
            m = _ALL_STEPS.search(log_text)
            inner = _seconds(m.group(1)) if m else None
            steps = {name: _seconds(d) for name, d in _ONE_STEP.findall(log_text)}
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
    stages = check_mirror()
    hp = train_defaults()
    if train_threads:
        hp["threads"] = train_threads
    if warmup:
        log("  warm-up pair (not counted)")
        run_once("bare", hp)
        run_once("dagster", hp)
    samples = {"bare": [], "dagster": []}
    for i in range(repeats):
        for side in ("bare", "dagster"):
            r = run_once(side, hp)
            samples[side].append(r)
            steps = " ".join(f"{k} {v:.2f}" for k, v in r["steps_s"].items())
            log(f"  repeat {i + 1}/{repeats} {side:<7} {r['seconds']:6.2f} s wall, "
                f"{r['cpu_seconds']:5.2f} s cpu, others {r['background_cores'] or 0:.2f} cores; {steps}")
    secs = {side: [r["seconds"] for r in rs] for side, rs in samples.items()}
    digests = {r["digest"] for rs in samples.values() for r in rs}
    same_mlflow = len({(r["mlflow_params"], r["mlflow_metrics"], r["mlflow_artifacts"], r["model_versions"])
                       for rs in samples.values() for r in rs}) == 1
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
        "same_model_digest": len(digests) == 1 and None not in digests,
        "same_mlflow_counts": same_mlflow, "all_gates_passed": all_passed,
        "runs": samples, "train_hp": hp, "warmup": warmup, "stages": stages,
    }
    result.update(import_time(max(repeats, 3)))
    shutil.rmtree(sbom_cache().parent, ignore_errors=True)
    sbom_cache.cache_clear()
    return result
