"""`z4 run | demo | cleanup | runs`: run the factory on one snapshot and read back what that run decided."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from z4_assets.cli._instance import dagster_home
from z4_assets.core.settings import Settings
from z4_assets.partitions import INVOCATION_TAG

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "taiwan_credit_default"
DAGSTER = [sys.executable, "-m", "dagster", "job", "execute", "-m", "z4_assets.definitions"]


def _env() -> dict:
    return {**os.environ, "DAGSTER_HOME": dagster_home()}


def _config_file(tmp: str, config) -> list[str]:
    """`-c FILE` holding a typed dg.RunConfig, or nothing when it is empty."""
    import yaml

    doc = config.to_config_dict()
    if not any(doc.values()):
        return []
    path = Path(tmp) / "run.yaml"
    path.write_text(yaml.safe_dump(doc))
    return ["-c", str(path)]


def cmd_run(args) -> int:
    import dagster as dg

    from z4_assets.assets.data import SnapshotConfig
    from z4_assets.cli.snapshots import add_partition, choose, run_tags

    env = _env()
    settings = Settings.from_env()
    if settings.execution == "container":  # refuse an unsigned or re-tagged image before anything else
        from z4_assets.image import trusted_image

        trusted_image(settings.image, Path(settings.image_evidence), settings.signing_pubkey_path)
    ref = choose(args.dataset_id, args.snapshot_id)
    add_partition(ref.label)
    invocation = uuid.uuid4().hex
    tags = {**run_tags(ref), INVOCATION_TAG: invocation}
    config = dg.RunConfig(ops={"z3_snapshot": SnapshotConfig(purpose=args.purpose)} if args.purpose else {})
    print(f"model_factory on {ref.label}")
    with tempfile.TemporaryDirectory() as tmp:
        argv, run_env = _execution([*DAGSTER, "-j", "model_factory", "--tags", json.dumps(tags),
                                    *_config_file(tmp, config)], env, tmp)
        code = subprocess.call(argv, env=run_env)
    run = _launched_run(env, invocation)
    if run is None:
        print(f"\nno run was started (dagster exited {code})")
        return code or 1
    if run.status.value == "FAILURE":
        print(f"\nrun {run.run_id} failed: cleaning it up (cleanup job)")
        _run_cleanup(env, run.run_id)
    from z4_assets.cli.summary import print_summary

    print_summary(env["DAGSTER_HOME"], run.run_id)
    return code


def _execution(argv: list[str], env: dict, tmp: str) -> tuple[list[str], dict]:
    """ARGV as is (Z4_EXECUTION=host), or inside the verified training image (container)."""
    settings = Settings.from_env()
    if settings.execution == "host":
        return argv, env
    if settings.execution != "container":
        from z4_assets.core.errors import Z4Error

        raise Z4Error(f"Z4_EXECUTION={settings.execution!r}: expected host or container")
    from z4_assets.image import container_command

    assert argv[0] == sys.executable  # nosec B101 # the python -m argv built above
    os.chmod(tmp, 0o755)  # nosec B103 # the run config in it is read by the image's user (secrets sit in a 0700 folder)
    cmd, podman_env, digest = container_command(settings, argv[1:], env["DAGSTER_HOME"], [Path(tmp)])
    print(f"in the training image {digest} (verified; --network=none, read-only root)")
    return cmd, {**env, "CONTAINERS_CONF": podman_env.get("CONTAINERS_CONF", "")}


def _launched_run(env: dict, invocation: str):
    import dagster as dg

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={INVOCATION_TAG: invocation}), limit=1)
    return runs[0] if runs else None


def _run_cleanup(env: dict, run_id: str) -> int:
    import dagster as dg

    from z4_assets.jobs import CleanupTarget

    with tempfile.TemporaryDirectory() as tmp:
        config = dg.RunConfig(ops={"cleanup_failed_run": CleanupTarget(failed_run_id=run_id)})
        return subprocess.call([*DAGSTER, "-j", "cleanup", *_config_file(tmp, config)], env=env)


def cmd_cleanup(args) -> int:
    from z4_assets.core.run_folder import check_run_id

    return _run_cleanup(_env(), check_run_id(args.run_id))


def cmd_demo(args) -> int:
    from z4_assets.cli.release import ensure_signing_key, pseudonym_key
    from z4_assets.core.z3 import add_snapshot

    ensure_signing_key()
    pseudonym_key()
    ref, created = add_snapshot(Settings.from_env().z3_root, "taiwan_credit_default", SAMPLE / "contract.yaml",
                                SAMPLE / "data.csv", dataset_config=SAMPLE / "dataset.yaml")
    print(f"sample snapshot {'registered' if created else 'already registered'}: {ref.label}")
    args.dataset_id, args.snapshot_id = ref.dataset_id, ref.snapshot_id
    return cmd_run(args)


def cmd_runs(args) -> int:
    """reconcile: runs whose process died -> FAILED; retry: re-execute a failed run from failure."""
    import dagster as dg

    from z4_assets import recovery

    os.environ["DAGSTER_HOME"] = dagster_home()
    with dg.DagsterInstance.get() as instance:
        if args.runs_command == "reconcile":
            from z4_assets.definitions import resources_from

            dead = recovery.reconcile(instance, resources_from(Settings.from_env())["mlflow"])
            for d in dead:
                print(f"run {d.run_id} marked FAILED: {d.reason}; cleaning it up (cleanup job)")
                _run_cleanup(dict(os.environ), d.run_id)  # as `z4 run` does; the sensor would, with a daemon
            print(f"{len(dead)} dead run(s) found")
            return 0
        result = recovery.retry_from_failure(instance, args.run_id)
        print(f"retry of {args.run_id}: run {result.run_id} {'SUCCESS' if result.success else 'FAILURE'}")
        return 0 if result.success else 1


def add_parsers(sub) -> None:
    run = sub.add_parser("run", help="run model_factory on one snapshot (the newest unless one is named)")
    run.add_argument("--dataset-id", default="")
    run.add_argument("--snapshot-id", default="")
    run.add_argument("--purpose", default="", help="purpose the run reads the data for (default: the policy's access.purpose)")
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="register the bundled sample and run model_factory on it")
    demo.add_argument("--purpose", default="", help=argparse_suppress())
    demo.set_defaults(func=cmd_demo)
    clean = sub.add_parser("cleanup", help="run the post-run cleanup for a (failed) model_factory run")
    clean.add_argument("run_id", help="the Dagster run id")
    clean.set_defaults(func=cmd_cleanup)
    runs = sub.add_parser("runs", help="recover after a crash: reconcile dead runs, retry a failed run").add_subparsers(
        dest="runs_command", required=True)
    runs.add_parser("reconcile", help="mark STARTED model_factory runs whose process died as FAILED "
                                      "(their MLflow run KILLED)").set_defaults(func=cmd_runs)
    retry = runs.add_parser("retry", help="re-execute a failed model_factory run from failure")
    retry.add_argument("run_id", help="the Dagster run id of the failed run")
    retry.set_defaults(func=cmd_runs)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
