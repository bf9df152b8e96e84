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

    ref, created = add_snapshot(_z3_root(), args.dataset_id, args.contract, args.data)
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

    env = _dagster_env()
    cmd = [sys.executable, "-m", "dagster", "job", "execute", "-m", "z4_assets.definitions",
           "-j", "model_factory"]
    selection = {k: v for k, v in (("dataset_id", args.dataset_id), ("snapshot_id", args.snapshot_id)) if v}
    with tempfile.TemporaryDirectory() as tmp:
        if selection:
            cfg = Path(tmp) / "run.yaml"
            cfg.write_text(yaml.safe_dump({"ops": {"z3_snapshot": {"config": selection}}}))
            cmd += ["-c", str(cfg)]
        code = subprocess.call(cmd, env=env)
    _print_summary(env)
    return code


def cmd_demo(args) -> int:
    from z4_assets.core.z3 import add_snapshot

    ref, created = add_snapshot(_z3_root(), "taiwan_credit_default", SAMPLE / "contract.yaml",
                                SAMPLE / "data.csv")
    print(f"sample snapshot {'registered' if created else 'already registered'}: {ref.label}")
    args.dataset_id, args.snapshot_id = ref.dataset_id, ref.snapshot_id
    return cmd_run(args)


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
    print(f"{'stage':<9} {'gate':<20} {'verdict':<7} {'measured':>12}  threshold")
    for stage in ("snapshot", "hygiene", "model"):
        path = latest / stage / "gates.json"
        if not path.is_file():
            print(f"{stage:<9} (not run: an upstream gate blocked it)")
            continue
        for g in read_json(path):
            value = f"{g['value']:.4g}" if isinstance(g["value"], float) else str(g["value"])
            print(f"{stage:<9} {g['name']:<20} {'pass' if g['passed'] else 'FAIL':<7} {value:>12}  "
                  f"{g['comparison']} {g['threshold']}")
    model = latest / "model" / "model_config.json"
    if model.is_file():
        cfg = read_json(model)
        print(f"\nmodel: {latest / 'model' / 'weights.pt'} (state_dict sha256 {cfg['state_dict_sha256'][:16]}...)")
    print("MLflow UI: mlflow ui --backend-store-uri sqlite:///mlflow.db | "
          f"Dagster UI: DAGSTER_HOME={env['DAGSTER_HOME']} dagster dev")


def cmd_ci_gate(args) -> int:
    from z4_assets.core.buildlane.runner import default_mode, run_lane

    mode = args.mode or default_mode()
    _, code = run_lane(Path(args.root), mode, only=args.only or None,
                       out_dir=Path(args.out) if args.out else None)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="z4", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    snap = sub.add_parser("snapshot", help="register and list Z3 snapshots").add_subparsers(
        dest="snapshot_command", required=True)
    add = snap.add_parser("add", help="register DATA (.csv or .parquet) as an immutable snapshot")
    add.add_argument("--dataset-id", required=True)
    add.add_argument("--contract", required=True, help="the dataset's contract YAML")
    add.add_argument("data")
    add.set_defaults(func=cmd_snapshot_add)
    ls = snap.add_parser("list", help="list registered snapshots, oldest first")
    ls.add_argument("--dataset-id", default="")
    ls.set_defaults(func=cmd_snapshot_list)
    run = sub.add_parser("run", help="run model_factory (newest snapshot unless one is chosen)")
    run.add_argument("--dataset-id", default="")
    run.add_argument("--snapshot-id", default="")
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="register the bundled sample and run model_factory on it")
    demo.set_defaults(func=cmd_demo)
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
