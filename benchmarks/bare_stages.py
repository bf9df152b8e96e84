"""The factory's first three assets, each mirrored call for call without Dagster.

Each takes the bare Factory (resources), the values earlier stages returned and the training
hyperparameters, and returns (its value, the gate that blocked or None). Keep each in step
with its asset: z4_assets/{snapshot,hygiene,training}/assets.py. These three are the data and
model path every factory run shares; later stages (fairness, model card, package, promotion,
cleanup) are left to the job, and factory_overhead.py selects the same three on its side.
"""

from __future__ import annotations



def first_failure(gates) -> str | None:
    """Same as z4_assets.checks.first_failure, which imports dagster."""
    failed = [g.name for g in gates if not g.passed]
    return ",".join(failed) if failed else None


def read(f, ref, contract, raw: bool = False):
    """Through the access broker, as the assets read (same key and log as the factory's env)."""
    import os

    from z4_assets.core import broker

    key = None if raw else broker.load_key(os.environ.get(broker.KEY_ENV, ""), broker.key_file_from_env())
    return broker.read_snapshot(ref, contract, purpose=ref.purpose, identity=broker.who(), run_id=f.run_key,
                                key=key, log_path=broker.log_path_from_env(), reader="bare", raw_for_intake=raw)


def z3_snapshot(f, values: dict, hp: dict):
    from z4_assets.core import broker
    from z4_assets.core.contract import load_contract
    from z4_assets.core.files import atomic_write_json
    from z4_assets.core.policy import load_policy
    from z4_assets.core.snapshot._checks import verify_snapshot
    from z4_assets.core.z3 import resolve_snapshot

    import dataclasses

    ref = resolve_snapshot(f.z3_root, "", "")
    contract, _ = load_contract(ref.contract_path)
    rules = load_policy(None, ref.dataset_id)
    ref = dataclasses.replace(ref, purpose=rules["access"]["purpose"])
    gates = verify_snapshot(ref, contract, rules, lambda: read(f, ref, contract, raw=True), "policy")
    out = f.run_dir("snapshot")
    atomic_write_json(out / "gates.json", [g.as_dict() for g in gates])
    atomic_write_json(out / "dataset_manifest.json", ref.manifest)
    with f.stage(ref, "z3_snapshot") as rec:
        rec.log(params={"policy_source": rules["source"]}, tags={"data_purpose": ref.purpose},
                metrics={f"gate.{g.name}.passed": float(g.passed) for g in gates})
        rec.artifacts(out, "reports/snapshot")
        broker.export_run_log(broker.log_path_from_env(), f.run_key, f.run_dir("access") / broker.ACCESS_LOG)
        rec.artifacts(f.run_dir("access"), "access")
        rec.blocked_by = first_failure(gates)
    return ref, rec.blocked_by


def hygiene_report(f, values: dict, hp: dict):
    import pandas as pd
    from z4_assets.core.contract import load_contract
    from z4_assets.core.files import atomic_write_json, read_json
    from z4_assets.core.hygiene._checks import run_hygiene
    from z4_assets.core.hygiene._evidence import write_hygiene_evidence
    from z4_assets.core.policy import load_policy

    ref = values["z3_snapshot"]
    contract, _ = load_contract(ref.contract_path)
    rules = load_policy(None, ref.dataset_id)
    df = read(f, ref, contract)
    bp = f.baseline_path(ref.dataset_id)
    baseline = read_json(bp) if bp.is_file() else None
    result = run_hygiene(df, contract, rules, baseline)

    out = f.run_dir("hygiene")
    write_hygiene_evidence(out, ref.label, ref.manifest["hash"], baseline, df, contract, result, rules["hygiene"])
    split_path = f.intermediate_dir() / "split.parquet"  # as storage.intermediate_dir: not evidence
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


def trained_model(f, values: dict, hp: dict):
    from z4_assets.core.contract import load_contract
    from z4_assets.core.files import atomic_write_json
    from z4_assets.core.training._fit import (
        fit_and_evaluate,
        load_split,
        performance_gates,
        save_model,
        tracking_record,
    )
    from z4_assets.core.policy import load_policy
    from z4_assets.core.training._monitor import TrainingMonitor, log_health

    ref = values["z3_snapshot"]
    contract, _ = load_contract(ref.contract_path)
    rules = load_policy(None, ref.dataset_id)
    df = read(f, ref, contract)
    split = load_split(values["hygiene_report"], len(df))
    monitor = TrainingMonitor(rules["training"], {"dagster_run_id": f.run_key, "snapshot_id": ref.label})
    outcome = fit_and_evaluate(df, contract, split, hp, monitor)
    gates = performance_gates(outcome, rules)
    out = f.run_dir("model")
    save_model(out, outcome, contract)
    atomic_write_json(out / "gates.json", [g.as_dict() for g in gates])
    with f.stage(ref, "trained_model") as rec:
        log_health(rec, monitor, out)  # as training/health.record_health, minus the Dagster metadata
        params, metrics, tags = tracking_record(hp, outcome, contract, split, rules)
        rec.log(params=params, metrics=metrics, tags=tags)
        rec.artifacts(out, "model")
        rec.blocked_by = first_failure(gates)
    return out, rec.blocked_by


STAGES = [("z3_snapshot", z3_snapshot), ("hygiene_report", hygiene_report),
          ("trained_model", trained_model)]
