"""No secret in any trace of a full run: files, tarball members, MLflow tags/params/artifacts,
Dagster events and compute logs, CLI output. The scanner is shown to find planted leaks first."""

import json
import os
import secrets
import sqlite3
import tarfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import dagster as dg
import pytest

from z4_assets.core.z3 import add_snapshot
from z4_assets.partitions import snapshots
from z4_assets.resources import FactoryStorage, SnapshotBroker
from z4_assets_tests.audit_helpers import Receiver, free_port
from z4_assets_tests.conftest import (DATASET, FACTORY_ASSETS, FAST_TRAIN, SAMPLE_CONTRACT, SAMPLE_DATASET_CONFIG,
                                      make_resources)
from z4_assets_tests.reliability.secret_scan import (key_needles, scan_dagster_runs, scan_events, scan_sqlite,
                                                     scan_text, scan_tree, value_needles)

# The secrets a deployment configures through the environment (README: S3 Z3 store, MLflow server
# auth, Vault revoker, the broker's pseudonymisation key), plus one of the project's own prefix.
CANARY_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
              "VAULT_TOKEN", "Z4_PSEUDONYM_KEY", "Z4_CANARY_SECRET", "Z4_AUDIT_PASSWORD")


@pytest.fixture(scope="module")
def canaries() -> dict[str, str]:
    """Fresh random values per session: nothing can match them by accident or by hard-coding."""
    return {name: f"z4canary-{name.lower()}-{secrets.token_hex(12)}" for name in CANARY_ENV}


@dg.asset(group_name="secret_scan_probe", partitions_def=snapshots)
def env_probe():
    """Proves the run's step process received the canaries (records their names, never values)."""
    seen = sorted(k for k in CANARY_ENV if os.environ.get(k, "").startswith("z4canary-"))
    return dg.MaterializeResult(metadata={"canary_env_seen": ",".join(seen)})


def _home(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _artifact_roots(db: Path) -> set[Path]:
    """Local folders the MLflow store keeps its runs' artifacts in (from its runs table)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        # per run, not the experiment root: test stores all default to ./mlruns/1 in the working directory
        uris = [r[0] for r in con.execute("SELECT artifact_uri FROM runs")]
    finally:
        con.close()
    return {Path(unquote(urlparse(u).path)) if u.startswith("file:") else Path(u) for u in uris if u}


def _scan_store(db: Path, needles, outside: Path) -> tuple[list, dict]:
    """The MLflow sqlite store row by row, and every artifact folder it points at outside `outside`."""
    hits, rows = scan_sqlite(db, needles)
    files = 0
    for root in _artifact_roots(db):
        if root.exists() and outside not in root.parents:
            more, n = scan_tree(root, needles)
            hits, files = hits + more, files + n
    return hits, {"mlflow_rows": rows, "artifact_files_outside": files}


@pytest.fixture
def canary_run(tmp_path_factory, sample_df, signing_key, cache_root, canaries):
    """A full factory run on the sample whose environment carries every canary secret, on a real
    on-disk Dagster instance (sqlite event log, compute logs) kept open for the scan."""
    root = tmp_path_factory.mktemp("canary_run")
    data = root / "data.parquet"
    sample_df.to_parquet(data, index=False)
    ref, _ = add_snapshot(root / "z3", DATASET, SAMPLE_CONTRACT, data, dataset_config=SAMPLE_DATASET_CONFIG)
    resources = make_resources(root, root / "z3", signing_key, cache_root)
    # the pseudonymisation key as a deployment gives it: the secret env var, read through dg.EnvVar
    resources["broker"] = SnapshotBroker(log_path=resources["broker"].log_path, key=dg.EnvVar("Z4_PSEUDONYM_KEY"))
    # the audit stream (issue 19) goes to a real receiver whose URL carries a canary password: the chain
    # (factory root) and every event the receiver got (root/received.jsonl) are in the scanned tree
    receiver = Receiver(free_port(), root / "received.jsonl").start()
    resources["storage"] = FactoryStorage(root=resources["storage"].root, cache_root=resources["storage"].cache_root,
                                          audit_url=dg.EnvVar("Z4_AUDIT_URL"),
                                          openlineage_url=f"http://127.0.0.1:{receiver.port}")
    audit_url = f"http://z9:{canaries['Z4_AUDIT_PASSWORD']}@127.0.0.1:{receiver.port}/events"
    with dg.instance_for_test(temp_dir=_home(root / "dagster_home"), set_dagster_home=False) as instance:
        instance.add_dynamic_partitions(snapshots.name, [ref.label])
        with pytest.MonkeyPatch.context() as mp:  # the canaries live only as long as the run
            for name, value in canaries.items():
                mp.setenv(name, value)
            mp.setenv("Z4_AUDIT_URL", audit_url)
            result = dg.materialize([*FACTORY_ASSETS, env_probe], resources=resources, instance=instance,
                                    run_config={"ops": {"trained_model": {"config": FAST_TRAIN}}},
                                    partition_key=ref.label, raise_on_error=False)
        receiver.kill()
        yield {"root": root, "result": result, "instance": instance, "received": receiver.records()}


def test_a_full_run_with_canary_secrets_leaks_none_of_them_nor_the_key(canary_run, canaries, signing_key):
    result, root = canary_run["result"], canary_run["root"]
    assert result.success
    seen = result.asset_materializations_for_node("env_probe")[0].metadata["canary_env_seen"].value
    assert seen.split(",") == sorted(CANARY_ENV)  # the step really ran with every canary set
    reads = [json.loads(x) for x in (root / "factory" / "access_log.jsonl").read_text().splitlines()]
    assert [r["pseudonymised"] for r in reads if not r["raw"]] == [["ID"]] * 4  # keyed by the canary key
    package = root / "factory" / "runs" / result.run_id / "package.tar.gz"
    assert package.is_file()  # the scan below covers the signed package's members
    received = canary_run["received"]  # ... and the audit stream, as Z9 received it and as chained
    assert len(received) > 50 and all(r["valid"] for r in received)
    assert (root / "factory" / "audit" / "events.jsonl").stat().st_size > 10_000

    needles = key_needles(signing_key) + [n for k, v in canaries.items() for n in value_needles(k, v)]
    hits, files = scan_tree(root, needles)  # factory root, Z3, mlflow.db, Dagster home (event log, compute logs)
    store_hits, counts = _scan_store(root / "mlflow.db", needles, root)
    event_hits, events = scan_dagster_runs(canary_run["instance"], needles)
    hits += store_hits + event_hits
    print(f"canary run scanned: {files} files, {counts}, {events} Dagster events, {len(needles)} needles")
    assert files > 50 and counts["mlflow_rows"] > 100 and counts["artifact_files_outside"] > 10 and events > 100
    assert [str(h) for h in hits] == []


def test_the_shared_sample_run_leaks_no_key_material(sample_factory_run, signing_key, tmp_path):
    result = sample_factory_run["result"]
    root = sample_factory_run["run_dir"].parents[2]
    assert result.success and (sample_factory_run["run_dir"] / "package.tar.gz").is_file()

    needles = key_needles(signing_key)
    hits, files = scan_tree(root, needles)
    store_hits, counts = _scan_store(root / "mlflow.db", needles, root)
    event_hits, events = scan_events(result.all_events, f"dagster run {result.run_id}", needles)
    tag_hits = scan_text(str(dict(result.dagster_run.tags)) + str(result.dagster_run.run_config), "run tags", needles)
    print(f"sample run scanned: {files} files, {counts}, {events} Dagster events")
    assert files > 50 and events > 100 and counts["artifact_files_outside"] > 10
    assert [str(h) for h in hits + store_hits + event_hits + tag_hits] == []


def test_the_cli_demo_run_leaks_no_key_material(demo_project, monkeypatch):
    """`z4 demo` = `dagster job execute` with a DAGSTER_HOME: its event log, compute logs, MLflow
    store and artifacts, factory root and printed output, everything in the project folder."""
    project, proc = demo_project["path"], demo_project["proc"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    key = project / ".z4" / "keys" / "signing.pem"
    needles = key_needles(key)

    hits, files = scan_tree(project, needles, skip=(key,))
    dbs = [p for p in project.rglob("*.db")]
    for db in dbs:
        more, _ = scan_sqlite(db, needles)
        hits += more
    hits += scan_text(proc.stdout, "z4 demo stdout", needles) + scan_text(proc.stderr, "z4 demo stderr", needles)
    monkeypatch.chdir(project)  # dagster.yaml's storage paths are relative to the project root
    with dg.DagsterInstance.from_config(str(project)) as instance:
        event_hits, events = scan_dagster_runs(instance, needles)
    compute_logs = list((project / ".dagster_home" / "compute_logs").rglob("*.err"))
    print(f"z4 demo scanned: {files} files, {len(dbs)} sqlite stores, {events} Dagster events, "
          f"{len(compute_logs)} compute logs")
    assert files > 50 and events > 100 and compute_logs and any(p.name == "mlflow.db" for p in dbs)
    assert [str(h) for h in hits + event_hits] == []


# --- negative controls: the scanner must find what is planted, wherever it is --------------------

def test_scanner_finds_key_material_planted_in_files_and_tarball_members(signing_key, tmp_path):
    needles = key_needles(signing_key)
    pem = signing_key.read_bytes()
    window = next(n for n in needles if n.label.startswith("pem-body[")).data.decode()
    scalar_hex = next(n for n in needles if n.label == "scalar-HEX[0:16]").data.decode()
    runs = tmp_path / "factory" / "runs" / "r1"
    runs.mkdir(parents=True)
    (runs / "report.json").write_text('{"note": "...%s..."}' % window)
    (runs / "public.pem").write_bytes(signing_key.with_name(signing_key.stem + ".pub.pem").read_bytes())
    member = tmp_path / "member.txt"
    member.write_text(f"debug dump: d={scalar_hex}ABCDEF")
    with tarfile.open(runs / "package.tar.gz", "w:gz") as tar:
        tar.add(member, arcname="package/model/debug.txt")
    (runs / "copied_key.pem").write_bytes(pem)

    hits, files = scan_tree(tmp_path / "factory", needles)
    where = {Path(h.where.split("!")[0]).name + ("!" + h.where.split("!")[1] if "!" in h.where else "") for h in hits}
    assert files == 4
    assert where == {"report.json", "package.tar.gz!package/model/debug.txt", "copied_key.pem"}
    assert {h.needle for h in hits if h.where.endswith("copied_key.pem")} >= {"pem", "a PEM private key block"}
    assert not [h for h in hits if "public.pem" in h.where]  # the public half is no leak


def test_scanner_finds_a_canary_in_an_mlflow_tag_and_a_dagster_event(canaries, tmp_path):
    from mlflow.tracking import MlflowClient

    secret = canaries["MLFLOW_TRACKING_PASSWORD"]
    needles = value_needles("MLFLOW_TRACKING_PASSWORD", secret)
    db = tmp_path / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    run = client.create_run(client.create_experiment("leak"))
    client.set_tag(run.info.run_id, "note", f"password={secret}")
    hits, _ = scan_sqlite(db, needles)
    assert [h.where.rsplit(":", 1)[1] for h in hits] == ["tags"]

    @dg.asset
    def leaky(context: dg.AssetExecutionContext):
        context.log.info(f"connecting with {secret}")

    @dg.asset
    def clean(context: dg.AssetExecutionContext):
        context.log.info("connecting with a redacted password: ***")

    with dg.instance_for_test(temp_dir=_home(tmp_path / "home")) as instance:
        dg.materialize([clean], instance=instance)
        clean_hits, clean_events = scan_dagster_runs(instance, needles)
        dg.materialize([leaky], instance=instance)
        leak_hits, _ = scan_dagster_runs(instance, needles)
    assert clean_events > 5 and clean_hits == []
    assert len({h.where for h in leak_hits}) >= 1 and {h.needle for h in leak_hits} == {"MLFLOW_TRACKING_PASSWORD"}
