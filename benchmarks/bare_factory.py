"""The whole model_factory without Dagster: the same stage functions, in stage-table order.

Run by factory_overhead.py in a fresh interpreter with the same settings the job's resources read
(core/settings.py: Z4_Z3_ROOT, Z4_FACTORY_ROOT, MLFLOW_TRACKING_URI, ...). Each stage is the call the
asset makes (core/<stage>.run_<asset>) between the same MLflow stage record (core/tracking.open_stage)
and the same cost record; what is left out is Dagster itself: the run and event storage, the outcome
store, the partition, the asset checks. The difference in wall time is the orchestration.
Prints one JSON line with its own timings.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse
import json
import os
import sys
import uuid
from datetime import datetime, timezone


def main() -> int:
    from z4_assets.core import broker
    from z4_assets.core.process import fast_exit
    from z4_assets.core.cost import cost_metrics, measure
    from z4_assets.core.policy import load_policy
    from z4_assets.core.run_folder import FactoryRoot
    from z4_assets.core.settings import PSEUDONYM_KEY_ENV, Settings
    from z4_assets.core.stage_run import StageRun
    from z4_assets.core.tracking import DEFAULT_EGRESS_POLICY, RunRecorder, open_stage
    from z4_assets.core.z3 import resolve_snapshot

    fast_exit()  # as definitions.py does in the job's process
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hp", required=True, help="TrainConfig values as JSON")
    args = parser.parse_args()
    t_work = time.perf_counter()
    settings, run_id = Settings.from_env(), str(uuid.uuid4())
    started = datetime.now(timezone.utc).isoformat()
    ref = resolve_snapshot(settings.z3_root)
    policy = load_policy(settings.policy or None, ref.dataset_id)
    ref = type(ref)(ref.dataset_id, ref.snapshot_id, ref.path, ref.manifest, policy.access.purpose)
    key = broker.load_key(os.environ.get(PSEUDONYM_KEY_ENV, ""), settings.pseudonym_key_file)
    identity = broker.who()

    def read(r, contract, reader, raw=False):
        return broker.read_snapshot(r, contract, purpose=r.purpose, identity=identity, run_id=run_id,
                                    key=None if raw else key, log_path=settings.access_log_path, reader=reader,
                                    raw_for_intake=raw)

    factory = FactoryRoot(settings.factory_root, settings.cache_root or None)
    egress = DEFAULT_EGRESS_POLICY
    recorder = RunRecorder(settings.mlflow_tracking_uri, settings.mlflow_experiment)
    out, steps = {}, {}

    def stage(asset: str, call):
        """One asset's work: its MLflow stage record around the stage function, then its cost record."""
        start = time.perf_counter()
        run = StageRun(run_id, ref, policy, factory, read, asset)
        with measure(int(ref.manifest["row_count"])) as cost:
            with open_stage(recorder, ref, run_id, None, "model_factory", settings.dagster_url, egress,
                            asset) as rec:
                outcome = call(run, rec)
                rec.record(outcome)
        recorder.log(rec.run_id, metrics=cost_metrics(asset, cost))
        steps[asset] = time.perf_counter() - start
        out[asset] = outcome
        return outcome.passed

    from z4_assets.core.cleanup import no_revoker, run_cleanup
    from z4_assets.core.fairness import run_fairness_report
    from z4_assets.core.governance import run_model_card
    from z4_assets.core.hygiene import run_hygiene_report
    from z4_assets.core.packaging import PackageIds, run_signed_package
    from z4_assets.core.promotion import run_promotion
    from z4_assets.core.record import run_run_record
    from z4_assets.core.security import run_adversarial_eval
    from z4_assets.core.snapshot import run_z3_snapshot
    from z4_assets.core.training import run_trained_model

    o = out
    chain = [
        ("z3_snapshot", lambda run, rec: run_z3_snapshot(
            run, lambda r, c: read(r, c, "z3_snapshot", raw=True), "policy access.purpose")),
        ("hygiene_report", lambda run, rec: run_hygiene_report(o["z3_snapshot"], run)),
        ("trained_model", lambda run, rec: run_trained_model(o["z3_snapshot"], o["hygiene_report"], run,
                                                             json.loads(args.hp))),
        ("adversarial_eval", lambda run, rec: run_adversarial_eval(o["z3_snapshot"], o["hygiene_report"],
                                                                   o["trained_model"], run)),
        ("fairness_report", lambda run, rec: run_fairness_report(o["z3_snapshot"], o["hygiene_report"],
                                                                 o["trained_model"], run)),
        ("model_card", lambda run, rec: run_model_card(o["z3_snapshot"], o["hygiene_report"], o["trained_model"],
                                                       o["adversarial_eval"], o["fairness_report"], run, rec.run_id)),
        ("signed_package", lambda run, rec: run_signed_package(
            {"snapshot": o["z3_snapshot"], "hygiene": o["hygiene_report"], "training": o["trained_model"],
             "security": o["adversarial_eval"], "fairness": o["fairness_report"], "governance": o["model_card"]},
            run, PackageIds(run_id, rec.run_id, rec.artifact_uri, started, settings.signing_key,
                            settings.signing_mode == "sigstore", settings.signing_mode), settings.access_log_path)),
        ("run_record", lambda run, rec: run_run_record(o["z3_snapshot"], o["signed_package"], run, rec,
                                                       sorted([*o, "run_record"]))),
        ("promotion", lambda run, rec: run_promotion(o["z3_snapshot"], o["signed_package"], o["run_record"], run,
                                                     settings.signing_pubkey_path, recorder.client)),
        ("cleanup_report", lambda run, rec: run_cleanup(run.folder, policy, no_revoker,
                                                        f"bare factory run {run_id}", ref.label)),
    ]
    blocked = None
    for asset, call in chain:
        if not stage(asset, call):  # a blocking check stops the job: downstream never runs
            blocked = out[asset].blocked_by
            break
    done = time.perf_counter()
    print(json.dumps({"run_key": run_id, "blocked_by": blocked, "startup_s": t_work - T0,
                      "work_s": done - t_work, "steps_s": steps}))
    return 1 if blocked else 0


if __name__ == "__main__":
    if os.environ.get("Z4_BENCH_PROFILE"):  # diagnosis: python -m pstats on the file it names
        import cProfile

        cProfile.run("code = main()", os.environ["Z4_BENCH_PROFILE"])
        sys.exit(code)  # noqa: F821 (set by cProfile.run)
    sys.exit(main())
