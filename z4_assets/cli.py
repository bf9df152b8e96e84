"""The `z4` command: register snapshots and run the factory without touching code."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from z4_assets.core.errors import Z4Error

SAMPLE = Path(__file__).resolve().parent / "sample_data" / "taiwan_credit_default"


def _z3_root() -> Path:
    return Path(os.environ.get("Z4_Z3_ROOT", "data/z3"))


def cmd_snapshot_add(args) -> int:
    from z4_assets.core.z3 import add_snapshot

    ref, created = add_snapshot(_z3_root(), args.dataset_id, args.contract, args.data,
                                dataset_config=args.dataset_config)
    verb = "registered" if created else "already registered (same data and contract)"
    print(f"{verb}: {ref.label}\n  path: {ref.path}\n  sha256: {ref.manifest['hash']}\n"
          f"  rows: {ref.manifest['row_count']}")
    return 0


def cmd_snapshot_list(args) -> int:
    from z4_assets.core.z3 import list_snapshots

    refs = list_snapshots(_z3_root(), args.dataset_id or None)
    for r in refs:
        print(f"{r.dataset_id}\t{r.snapshot_id}\t{r.manifest['row_count']} rows\t{r.manifest['hash'][:16]}")
    if not refs:
        print(f"no snapshots under {_z3_root()}")
    return 0


def _signing_key() -> Path:
    from z4_assets.definitions import DEFAULT_SIGNING_KEY

    return Path(os.environ.get("Z4_SIGNING_KEY", DEFAULT_SIGNING_KEY))


def cmd_keygen(args) -> int:
    from z4_assets.core.packaging._signing import keygen

    _pseudonym_key()
    priv, pub = keygen(args.out or _signing_key())
    print(f"private key: {priv} (0600, keep it secret; set Z4_SIGNING_KEY to this path)\n"
          f"public key:  {pub} (give this to verifiers: z4 verify PACKAGE --key {pub})")
    return 0


def _pseudonym_key() -> None:
    """The local pseudonymisation key file, created once (unless the key comes from Z4_PSEUDONYM_KEY)."""
    from z4_assets.core.broker import KEY_ENV, key_file_from_env, keygen

    if os.environ.get(KEY_ENV):
        return
    path, created = keygen(key_file_from_env())
    print(f"pseudonymisation key: {path} ({'created, 0600' if created else 'kept'}; keep it secret "
          "and never rotate it casually: a new key changes every pseudonym)")


def cmd_verify(args) -> int:
    import json

    from z4_assets.core.packaging._verify import verify_package

    if not (args.key or args.identity):
        raise Z4Error("give --key PUB.pem, or --identity and --issuer for keyless signatures")
    report = verify_package(args.package, args.key, args.identity, args.issuer)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for c in report.checks:
            print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['check']:<10} {c['detail']}")
        print(f"{'VERIFIED' if report.ok else 'REJECTED'}: {args.package} ({report.seconds:.2f} s)")
    if not report.ok:
        print(f"z4: verify: {report.first_problem}", file=sys.stderr)
    return 0 if report.ok else 1


def cmd_rebuild(args) -> int:
    from z4_assets.core.rebuild import rebuild_from

    key = args.key or str(_signing_key().with_name(_signing_key().stem + ".pub.pem"))
    result = rebuild_from(args.source, Path(os.environ.get("Z4_FACTORY_ROOT", "data/factory")), _z3_root(),
                          os.environ.get("MLFLOW_TRACKING_URI", ""),
                          os.environ.get("Z4_MLFLOW_EXPERIMENT", "z4-model-factory"),
                          args.allow_code_drift, args.seed, key)
    print("\n".join(result.lines()))
    return 0 if result.identical else 1


def _dagster_env() -> dict:
    env = dict(os.environ)
    if not env.get("DAGSTER_HOME"):
        if not Path("dagster.yaml").is_file():
            raise Z4Error("DAGSTER_HOME is not set and there is no dagster.yaml here: "
                          "run from the project root or set DAGSTER_HOME")
        env["DAGSTER_HOME"] = str(Path.cwd())
    return env


def cmd_run(args) -> int:
    import tempfile

    import yaml

    import json
    import uuid

    env = _dagster_env()
    invocation = uuid.uuid4().hex
    cmd = [sys.executable, "-m", "dagster", "job", "execute", "-m", "z4_assets.definitions",
           "-j", "model_factory", "--tags", json.dumps({INVOCATION_TAG: invocation})]
    selection = {k: v for k, v in (("dataset_id", args.dataset_id), ("snapshot_id", args.snapshot_id)) if v}
    if getattr(args, "purpose", ""):
        selection["purpose"] = args.purpose
    with tempfile.TemporaryDirectory() as tmp:
        if selection:
            cfg = Path(tmp) / "run.yaml"
            cfg.write_text(yaml.safe_dump({"ops": {"z3_snapshot": {"config": selection}}}))
            cmd += ["-c", str(cfg)]
        code = subprocess.call(cmd, env=env)
    if code != 0:
        _clean_failed_run(env, invocation)
    _print_summary(env)
    return code


INVOCATION_TAG = "z4/invocation"


def _clean_failed_run(env: dict, invocation: str) -> None:
    """No daemon, no failure sensor: the CLI launches the same cleanup job for its failed run."""
    import dagster as dg

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={INVOCATION_TAG: invocation}), limit=1)
    if runs and runs[0].status == dg.DagsterRunStatus.FAILURE:
        print(f"\nrun {runs[0].run_id} failed: cleaning it up (cleanup job)")
        _run_cleanup(env, runs[0].run_id)


def _run_cleanup(env: dict, run_id: str) -> int:
    import tempfile

    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "cleanup.yaml"
        cfg.write_text(yaml.safe_dump({"ops": {"cleanup_failed_run": {"config": {"failed_run_id": run_id}}}}))
        return subprocess.call([sys.executable, "-m", "dagster", "job", "execute", "-m",
                                "z4_assets.definitions", "-j", "cleanup", "-c", str(cfg)], env=env)


def cmd_cleanup(args) -> int:
    from z4_assets.core.run_folder import check_run_id

    return _run_cleanup(_dagster_env(), check_run_id(args.run_id))


def cmd_demo(args) -> int:
    from z4_assets.core.z3 import add_snapshot

    if not _signing_key().exists():
        from z4_assets.core.packaging._signing import keygen

        priv, pub = keygen(_signing_key())
        print(f"created a local signing key pair for the demo: {priv} (0600), {pub}")
    _pseudonym_key()
    ref, created = add_snapshot(_z3_root(), "taiwan_credit_default", SAMPLE / "contract.yaml",
                                SAMPLE / "data.csv", dataset_config=SAMPLE / "dataset.yaml")
    print(f"sample snapshot {'registered' if created else 'already registered'}: {ref.label}")
    args.dataset_id, args.snapshot_id = ref.dataset_id, ref.snapshot_id
    return cmd_run(args)


def cmd_retention_apply(args) -> int:
    from datetime import datetime, timezone

    from z4_assets.core.cleanup._apply import apply_retention, render, write_report
    from z4_assets.core.cleanup._retention import parse_time, retention_policy
    from z4_assets.core.policy import load_policy

    try:
        now = parse_time(args.as_of) if args.as_of else datetime.now(timezone.utc)
    except ValueError:
        raise Z4Error(f"--as-of {args.as_of!r} is not an ISO date or time") from None
    policy = load_policy(os.environ.get("Z4_POLICY") or None, "")
    grace = retention_policy(policy.get("retention"), policy["source"]).scratch_grace_hours
    root = Path(os.environ.get("Z4_FACTORY_ROOT", "data/factory"))
    report = apply_retention(root, now, dry_run=args.dry_run, scratch_grace_hours=grace)
    path = write_report(root, report)
    print(render(report, path))
    return 1 if report["refused"] else 0


def _print_summary(env: dict) -> None:
    """The newest run's verdicts, read back from the evidence each stage wrote."""
    from z4_assets.core.files import read_json

    runs = Path(os.environ.get("Z4_FACTORY_ROOT", "data/factory")) / "runs"
    if not runs.is_dir():
        return
    latest = max(runs.iterdir(), key=lambda p: p.stat().st_mtime, default=None)
    if latest is None:
        return
    print(f"\nEvidence of Dagster run {latest.name}: {latest}")
    print(f"{'stage':<10} {'gate':<34} {'verdict':<7} {'measured':>12}  threshold")
    for stage in ("snapshot", "hygiene", "model", "security", "fairness", "governance", "record", "promotion"):
        path = latest / stage / "gates.json"
        if not path.is_file():
            print(f"{stage:<9} (not run: an upstream gate blocked it)")
            continue
        for g in read_json(path):
            value = f"{g['value']:.4g}" if isinstance(g["value"], float) else str(g["value"])
            print(f"{stage:<10} {g['name']:<34} {'pass' if g['passed'] else 'FAIL':<7} {value:>12}  "
                  f"{g['comparison']} {g['threshold']}")
    model = latest / "model" / "model_config.json"
    if model.is_file():
        cfg = read_json(model)
        print(f"\nmodel: {latest / 'model' / 'weights.pt'} (state_dict sha256 {cfg['state_dict_sha256'][:16]}...)")
    card = latest / "governance" / "model_card.md"
    if card.is_file():
        print(f"model card: {card}")
    promo = latest / "promotion" / "promotion.json"
    if promo.is_file():
        p = read_json(promo)
        print(f"package: {latest / 'package.tar.gz'} (sha256 {p['package_sha256'][:16]}...)\n"
              f"registered: {p['model']} version {p['version']} as @{p['alias']} | "
              f"verify: z4 verify {latest / 'package.tar.gz'} --key {_signing_key().with_name(_signing_key().stem + '.pub.pem')}")
    print("MLflow UI: mlflow ui --backend-store-uri sqlite:///mlflow.db | "
          f"Dagster UI: DAGSTER_HOME={env['DAGSTER_HOME']} dagster dev")


def cmd_ci_gate(args) -> int:
    from z4_assets.buildlane.runner import default_mode, run_lane

    mode = args.mode or default_mode()
    _, code = run_lane(Path(args.root), mode, only=args.only or None,
                       out_dir=Path(args.out) if args.out else None)
    return code


def cmd_runs(args) -> int:
    """reconcile: runs whose process died -> FAILED; retry: re-execute a failed run from failure."""
    import dagster as dg

    from z4_assets import recovery

    os.environ["DAGSTER_HOME"] = _dagster_env()["DAGSTER_HOME"]
    with dg.DagsterInstance.get() as instance:
        if args.runs_command == "reconcile":
            from z4_assets.definitions import resources_from_env

            dead = recovery.reconcile(instance, resources_from_env()["mlflow"])
            for d in dead:
                print(f"run {d.run_id} marked FAILED: {d.reason}; cleaning it up (cleanup job)")
                _run_cleanup(dict(os.environ), d.run_id)  # as `z4 run` does; the sensor would, with a daemon
            print(f"{len(dead)} dead run(s) found")
            return 0
        result = recovery.retry_from_failure(instance, args.run_id)
        print(f"retry of {args.run_id}: run {result.run_id} {'SUCCESS' if result.success else 'FAILURE'}")
        return 0 if result.success else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="z4", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    snap = sub.add_parser("snapshot", help="register and list Z3 snapshots").add_subparsers(
        dest="snapshot_command", required=True)
    add = snap.add_parser("add", help="register DATA (.csv or .parquet) as an immutable snapshot")
    add.add_argument("--dataset-id", required=True)
    add.add_argument("--contract", required=True, help="the dataset's contract YAML")
    add.add_argument("--dataset-config", default=None,
                     help="purpose, intended use and out-of-scope uses (YAML), copied into the snapshot "
                          "for the model card")
    add.add_argument("data")
    add.set_defaults(func=cmd_snapshot_add)
    ls = snap.add_parser("list", help="list registered snapshots, oldest first")
    ls.add_argument("--dataset-id", default="")
    ls.set_defaults(func=cmd_snapshot_list)
    run = sub.add_parser("run", help="run model_factory (newest snapshot unless one is chosen)")
    run.add_argument("--dataset-id", default="")
    run.add_argument("--snapshot-id", default="")
    run.add_argument("--purpose", default="", help="purpose the run reads the data for (default: the policy's access.purpose)")
    run.set_defaults(func=cmd_run)
    kg = sub.add_parser("keygen", help="create an EC P-256 signing key pair (private key 0600)")
    kg.add_argument("--out", default="", help="private key path (default: $Z4_SIGNING_KEY or .z4/keys/signing.pem)")
    kg.set_defaults(func=cmd_keygen)
    ver = sub.add_parser("verify", help="verify a signed package offline")
    ver.add_argument("package", help="package folder or package.tar.gz")
    ver.add_argument("--key", default="", help="public key PEM (EC key signatures)")
    ver.add_argument("--identity", default="", help="signer identity (keyless Sigstore signatures)")
    ver.add_argument("--issuer", default="", help="OIDC issuer (keyless Sigstore signatures)")
    ver.add_argument("--json", action="store_true", help="print the report as JSON")
    ver.set_defaults(func=cmd_verify)
    rb = sub.add_parser("rebuild", help="re-run training from a run's record and compare weights")
    rb.add_argument("source", help="Dagster run id, package folder or package.tar.gz")
    rb.add_argument("--allow-code-drift", action="store_true", help="rebuild even if the code is at another commit")
    rb.add_argument("--seed", type=int, default=None, help="override the training seed (expect DIFFERENT)")
    rb.add_argument("--key", default="", help="public key to verify the package first (default: the local key)")
    rb.set_defaults(func=cmd_rebuild)
    demo = sub.add_parser("demo", help="register the bundled sample and run model_factory on it")
    demo.set_defaults(func=cmd_demo)
    clean = sub.add_parser("cleanup", help="run the post-run cleanup for a (failed) model_factory run")
    clean.add_argument("run_id", help="the Dagster run id")
    clean.set_defaults(func=cmd_cleanup)
    ret = sub.add_parser("retention", help="apply the retention policy to past runs").add_subparsers(
        dest="retention_command", required=True)
    apply = ret.add_parser("apply", help="delete artifacts whose retention expired; print and record "
                                         "what was deleted and kept (never a signed or promoted run's evidence)")
    apply.add_argument("--dry-run", action="store_true", help="report what would be deleted, delete nothing")
    apply.add_argument("--as-of", default="", help="judge expiry as of this ISO time (default: now)")
    apply.set_defaults(func=cmd_retention_apply)
    runs = sub.add_parser("runs", help="recover after a crash: reconcile dead runs, retry a failed run").add_subparsers(
        dest="runs_command", required=True)
    runs.add_parser("reconcile", help="mark STARTED model_factory runs whose process died as FAILED "
                                      "(their MLflow run KILLED)").set_defaults(func=cmd_runs)
    retry = runs.add_parser("retry", help="re-execute a failed model_factory run from failure")
    retry.add_argument("run_id", help="the Dagster run id of the failed run")
    retry.set_defaults(func=cmd_runs)
    gate = sub.add_parser("ci-gate", help="run the build and security lane (lock, lint, SAST, secrets, "
                          "image, SCA, SBOM) and print a PASS/FAIL table")
    gate.add_argument("--mode", choices=["development", "release"], default="",
                      help="release blocks when dependencies could not be audited; development warns "
                           "(default: $Z4_LANE_MODE, else development)")
    gate.add_argument("--only", action="append", metavar="GATE",
                      help="run only this gate (repeatable): lock ruff bandit secrets dockerfile pip-audit sbom")
    gate.add_argument("--root", default=".", help="the project checkout (default: the current directory)")
    gate.add_argument("--out", default="", help="artifact folder (default: <root>/build/ci-gate)")
    gate.set_defaults(func=cmd_ci_gate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Z4Error as e:
        print(f"z4: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
