"""The model_factory job's work without Dagster: same domain calls, files and MLflow records.

Run by factory_overhead.py in a fresh interpreter, with the same environment variables the
Dagster job reads (Z4_Z3_ROOT, Z4_FACTORY_ROOT, MLFLOW_TRACKING_URI). Each stage mirrors one
asset in z4_assets/{snapshot,hygiene,training}/assets.py line by line, minus the Dagster calls
(MaterializeResult, check results), so the difference in wall time is the orchestration.
Prints one JSON line with its own import and work seconds.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402


def first_failure(gates) -> str | None:
    """Same as z4_assets.checks.first_failure, which imports dagster."""
    failed = [g.name for g in gates if not g.passed]
    return ",".join(failed) if failed else None


class Factory:
    """The resources of definitions.resources_from_env, as plain values."""

    def __init__(self, run_key: str):
        self.run_key = run_key
        self.z3_root = os.environ.get("Z4_Z3_ROOT", "data/z3")
        self.root = Path(os.environ.get("Z4_FACTORY_ROOT", "data/factory"))
        self.tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        self.experiment = os.environ.get("Z4_MLFLOW_EXPERIMENT", "z4-model-factory")

    def run_dir(self, stage: str) -> Path:
        d = self.root / "runs" / self.run_key / stage
        d.mkdir(parents=True, exist_ok=True)
        return d

    def baseline_path(self, dataset_id: str) -> Path:
        return self.root / "baselines" / f"{dataset_id}.json"

    @contextmanager
    def stage(self, ref, stage_name: str):
        """MlflowTracking.stage: a new recorder per stage, open by run key, close with a verdict."""
        from z4_assets.core.provenance import code_version
        from z4_assets.core.tracking import RunRecorder

        recorder = RunRecorder(self.tracking_uri, self.experiment)
        code = code_version()
        started = datetime.now(timezone.utc)
        run_name = f"z4-{ref.dataset_id}-{started:%Y%m%d-%H%M}-{code['git_short']}"
        m = ref.manifest
        tags = {
            "git_sha": code["git_sha"], "git_dirty": code["git_dirty"],
            "dataset_id": ref.dataset_id, "snapshot_id": ref.snapshot_id,
            "dataset_hash": m["hash"], "snapshot_at": m["snapshot_at"],
            "contract_hash": m["contract_hash"], "orchestrator": "none (benchmark)",
            "dagster.job": "model_factory",
        }
        run_id = recorder.open(self.run_key, run_name, tags)
        record = Record(recorder, run_id)
        try:
            yield record
        except BaseException as e:
            recorder.close(run_id, f"error in {stage_name}: {type(e).__name__}")
            raise
        recorder.close(run_id, record.blocked_by)


class Record:
    def __init__(self, recorder, run_id: str):
        self.recorder, self.run_id, self.blocked_by = recorder, run_id, None

    def log(self, params=None, metrics=None, tags=None):
        self.recorder.log(self.run_id, params, metrics, tags)

    def artifacts(self, local_dir, artifact_path: str) -> None:
        self.recorder.log_artifacts(self.run_id, local_dir, artifact_path)


def snapshot_stage(f: Factory):
    """z3_snapshot."""
    from z4_assets.core.contract import load_contract
    from z4_assets.core.files import atomic_write_json
    from z4_assets.core.policy import load_policy
    from z4_assets.core.snapshot_checks import verify_snapshot
    from z4_assets.core.z3 import resolve_snapshot

    ref = resolve_snapshot(f.z3_root, "", "")
    contract, _ = load_contract(ref.contract_path)
    rules = load_policy(None, ref.dataset_id)
    gates = verify_snapshot(ref, contract, rules)
    out = f.run_dir("snapshot")
    atomic_write_json(out / "gates.json", [g.as_dict() for g in gates])
    atomic_write_json(out / "dataset_manifest.json", ref.manifest)
    with f.stage(ref, "z3_snapshot") as rec:
        rec.log(params={"policy_source": rules["source"]},
                metrics={f"gate.{g.name}.passed": float(g.passed) for g in gates})
        rec.artifacts(out, "reports/snapshot")
        rec.blocked_by = first_failure(gates)
    return ref, rec.blocked_by


def hygiene_stage(f: Factory, ref):
    """hygiene_report."""
    import pandas as pd

    from z4_assets.core.contract import load_contract
    from z4_assets.core.files import atomic_write_json, atomic_write_text, read_json
    from z4_assets.core.gates import render_markdown
    from z4_assets.core.hygiene import run_hygiene
    from z4_assets.core.policy import load_policy
    from z4_assets.core.z3 import load_snapshot_frame

    contract, _ = load_contract(ref.contract_path)
    rules = load_policy(None, ref.dataset_id)
    df = load_snapshot_frame(ref, contract)
    bp = f.baseline_path(ref.dataset_id)
    baseline = read_json(bp) if bp.is_file() else None
    result = run_hygiene(df, contract, rules, baseline)

    out = f.run_dir("hygiene")
    report = {"snapshot": ref.label, "dataset_hash": ref.manifest["hash"],
              "baseline": (baseline or {}).get("snapshot"), **result.report}
    atomic_write_json(out / "hygiene_report.json", report)
    atomic_write_json(out / "gates.json", [g.as_dict() for g in result.gates])
    atomic_write_text(out / "hygiene_summary.md", render_markdown(
        f"Hygiene report: {ref.label}", result.gates,
        f"{len(df)} rows, positive rate {result.report['positive_rate']:.3f}, "
        f"split {result.split_strategy} {result.report['split']['counts']}."))
    split_path = out / "split.parquet"
    pd.DataFrame({"row": range(len(df)), "split": result.split}).to_parquet(split_path, index=False)
    if baseline is None and result.passed:
        atomic_write_json(bp, {"snapshot": ref.label, **result.profile})
    with f.stage(ref, "hygiene_report") as rec:
        rec.log(metrics={f"hygiene.{g.name}": float(g.value) for g in result.gates
                         if isinstance(g.value, (int, float))},
                tags={"hygiene.passed": str(result.passed).lower()})
        rec.artifacts(out, "reports/hygiene")
        rec.blocked_by = first_failure(result.gates)
    return split_path, rec.blocked_by


def training_stage(f: Factory, ref, split_path: Path, hp: dict):
    """trained_model."""
    from z4_assets.core.contract import load_contract
    from z4_assets.core.files import atomic_write_json
    from z4_assets.core.model_fit import (fit_and_evaluate, flat_metrics, load_split,
                                          performance_gates, save_model)
    from z4_assets.core.policy import load_policy
    from z4_assets.core.z3 import load_snapshot_frame

    contract, _ = load_contract(ref.contract_path)
    rules = load_policy(None, ref.dataset_id)
    df = load_snapshot_frame(ref, contract)
    split = load_split(split_path, len(df))
    outcome = fit_and_evaluate(df, contract, split, hp)
    gates = performance_gates(outcome, rules)
    out = f.run_dir("model")
    save_model(out, outcome, contract)
    atomic_write_json(out / "gates.json", [g.as_dict() for g in gates])
    with f.stage(ref, "trained_model") as rec:
        rec.log(params={**hp, "features": len(outcome.spec.output_names),
                        "excluded_sensitive": sorted(set(contract.candidate_features) - set(contract.model_features))},
                metrics=flat_metrics(outcome.metrics),
                tags={"seed": hp["seed"], "state_dict_sha256": outcome.train.digest})
        rec.artifacts(out, "model")
        rec.blocked_by = first_failure(gates)
    return outcome.train.digest, rec.blocked_by


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hp", required=True, help="TrainConfig defaults as JSON")
    args = parser.parse_args()
    t_work = time.perf_counter()
    f = Factory(str(uuid.uuid4()))
    steps = {}
    ref, blocked = snapshot_stage(f)
    steps["z3_snapshot"] = time.perf_counter() - t_work
    digest = None
    if not blocked:  # a blocking check stops the job: downstream never runs
        split_path, blocked = hygiene_stage(f, ref)
        steps["hygiene_report"] = time.perf_counter() - t_work - sum(steps.values())
    if not blocked:
        digest, blocked = training_stage(f, ref, split_path, json.loads(args.hp))
        steps["trained_model"] = time.perf_counter() - t_work - sum(steps.values())
    done = time.perf_counter()
    print(json.dumps({"run_key": f.run_key, "blocked_by": blocked, "digest": digest,
                      "startup_s": t_work - T0, "work_s": done - t_work, "steps_s": steps}))
    return 1 if blocked else 0


if __name__ == "__main__":
    sys.exit(main())
