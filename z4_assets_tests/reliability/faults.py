"""Fault-injection helpers: a real factory project in a temp folder, driven through the real CLIs.

Every run is `dagster job execute` in its own process group (so a SIGKILL takes its children
too), against a temp DAGSTER_HOME with the repo's dagster.yaml, a real signing key and a real
MLflow store (sqlite, or a real `mlflow server`). Nothing here is a fake.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from z4_assets_tests.servers import wait_http

ROOT = Path(__file__).resolve().parents[2]
MODEL = "z4-taiwan_credit_default"
WAIT = 600  # seconds: an upper bound for a whole run on a busy 2-core box, not a timing assertion


@dataclass
class Project:
    """One factory project: DAGSTER_HOME (= cwd), its Z3 root, factory root and MLflow store."""

    home: Path
    z3_root: Path
    factory_root: Path
    tracking_uri: str
    signing_key: Path
    cache_root: Path | None = None  # the session's SBOM cache: the SBOM depends only on the environment

    @property
    def public_key(self) -> Path:
        return self.signing_key.with_name(self.signing_key.stem + ".pub.pem")

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("Z4_", "MLFLOW_", "DAGSTER_"))}
        return {**env, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(self.home),
                "Z4_Z3_ROOT": str(self.z3_root), "Z4_FACTORY_ROOT": str(self.factory_root),
                "Z4_SIGNING_KEY": str(self.signing_key), "MLFLOW_TRACKING_URI": self.tracking_uri,
                **({"Z4_CACHE_ROOT": str(self.cache_root)} if self.cache_root else {}), **extra}


def new_project(home: Path, z3_root: Path, signing_key: Path, tracking_uri: str = "",
                cache_root: Path | None = None) -> Project:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    from z4_assets.core.broker import DEFAULT_KEY_FILE, keygen

    keygen(home / DEFAULT_KEY_FILE)  # the pseudonymisation key, where `z4 keygen` puts it (cwd = home)
    return Project(home, z3_root, home / "factory", tracking_uri or f"sqlite:///{home / 'mlflow.db'}",
                   signing_key, cache_root)


def start_factory(p: Project, log_name: str = "run.log") -> subprocess.Popen:
    """CI's line, `dagster job execute -j model_factory --tags "$(z4 snapshot tags)"` (the newest
    snapshot's partition and tags), in a new process group, output to HOME/LOG_NAME."""
    tags = z4(p, "snapshot", "tags")
    assert tags.returncode == 0, tags.stderr[-2000:]
    log = open(p.home / log_name, "w")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "dagster", "job", "execute", "-m", "z4_assets.definitions",
             "-j", "model_factory", "--tags", tags.stdout.strip()], cwd=p.home, env=p.env(), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the whole process group of PROC (the job and any child, e.g. the signer)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    if sig == signal.SIGKILL:
        proc.wait(timeout=60)


def z4(p: Project, *args: str, timeout: int = WAIT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "z4_assets.cli", *args], cwd=p.home, env=p.env(),
                          capture_output=True, text=True, timeout=timeout)


@contextmanager
def instance(p: Project):
    """The project's Dagster instance (dagster.yaml's storage paths are relative to the project root)."""
    here = os.getcwd()
    os.chdir(p.home)
    try:
        with dg.DagsterInstance.from_config(str(p.home)) as inst:
            yield inst
    finally:
        os.chdir(here)


def runs(p: Project) -> list[dg.DagsterRun]:
    """The project's model_factory runs, oldest first."""
    if not (p.home / ".dagster_home" / "storage").is_dir():
        return []
    with instance(p) as inst:
        return list(reversed(inst.get_runs(filters=dg.RunsFilter(job_name="model_factory"))))


def steps(p: Project, run_id: str, event: dg.DagsterEventType) -> set[str]:
    with instance(p) as inst:
        records = inst.get_records_for_run(run_id, of_type=event).records
        return {r.event_log_entry.dagster_event.step_key for r in records}


def wait_until(what: str, ready, proc: subprocess.Popen, log: Path, poll: float = 0.05):
    """Poll READY() until it returns something truthy; fail if PROC ends first."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = ready()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}:\n"
                                 f"{log.read_text()[-3000:]}")
        time.sleep(poll)
    raise AssertionError(f"no {what} within {WAIT} s")


def run_folder_with(p: Project, pattern: str):
    """READY for wait_until: the run id once runs/<id>/PATTERN exists (a stage has begun writing).

    The file system, not the instance, is polled: opening the sqlite instance while the job's
    process is still creating it races with its schema migration."""
    def ready():
        found = sorted((p.factory_root / "runs").glob(f"*/{pattern}"))
        return found[0].relative_to(p.factory_root / "runs").parts[0] if found else None
    return ready


def visible_packages(factory_root: Path) -> list[str]:
    """Package folders and tarballs (published or half-written) anywhere under runs/."""
    runs_dir = factory_root / "runs"
    if not runs_dir.is_dir():
        return []
    return sorted(str(f.relative_to(runs_dir)) for f in runs_dir.rglob("*")
                  if f.name.startswith(("package", ".package")) and f.parent.parent == runs_dir)


def staging_dirs(factory_root: Path) -> list[Path]:
    return sorted((factory_root / "runs").glob("*/.package-staging-*"))


def mlflow_client(p: Project):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=p.tracking_uri, registry_uri=p.tracking_uri)


def mlflow_run(p: Project, dagster_run_id: str):
    """The factory's MLflow run for a Dagster run (its root run, for a retry)."""
    client = mlflow_client(p)
    exp = client.get_experiment_by_name("z4-model-factory")
    found = client.search_runs([exp.experiment_id], f"tags.`dagster.run_id` = '{dagster_run_id}'")
    assert len(found) == 1, f"{len(found)} MLflow runs tagged with {dagster_run_id}"
    return found[0]


def registry_entries(p: Project) -> list[str]:
    """Model versions and aliases of the factory's model (empty when nothing was promoted)."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(p)
    try:
        model = client.get_registered_model(MODEL)
    except MlflowException:
        return []
    versions = client.search_model_versions(f"name='{MODEL}'")
    return [f"version {v.version}" for v in versions] + [f"alias {a}" for a in model.aliases]


def wait_for_server(url: str, proc: subprocess.Popen, log: Path) -> None:
    wait_http(f"{url}/health", proc, log, "the MLflow server", timeout=WAIT)
