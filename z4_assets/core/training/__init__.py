"""The training stage: the candidate model, trained reproducibly on its lineage's clean split, gated on
test AUC and KS, with a bit-exact weights digest; and how later stages load and score it."""

from __future__ import annotations

from pathlib import Path

from z4_assets.core.files import atomic_write_json
from z4_assets.core.outcome import HygieneOutcome, Lineage, ModelOutcome, SnapshotOutcome, accept
from z4_assets.core.stage_run import StageRun
from z4_assets.core.stages import TRAINING
from z4_assets.core.training._families import PROTOCOL, describe_schemas, resolve_family
from z4_assets.core.training._features import FeatureSpec
from z4_assets.core.training._monitor import TrainingDiverged
from z4_assets.core.training._schedule import CONVERGED

__all__ = ["CONVERGED", "PROTOCOL", "pickles_in", "describe_schemas", "resolve_family", "FeatureSpec", "TrainingDiverged", "load_model", "load_model_dir", "locate_package", "predict_proba", "rebuild_from", "run_trained_model",
           "score_rows"]


def run_trained_model(snapshot: SnapshotOutcome, hygiene: HygieneOutcome, run: StageRun, hp: dict) -> ModelOutcome:
    """Fit the feature spec and the chosen family's model on the train split (HP: TrainConfig, whose
    `model:` section overrides the dataset config's), export it (ONNX or safetensors), score every
    split, gate on the test split and on the export's parity. A NaN/inf loss raises TrainingDiverged
    after writing the log."""
    from z4_assets.core.split import load_split
    from z4_assets.core.training._fit import fit_and_evaluate, parity_gate, performance_gates, save_model, tracking_record
    from z4_assets.core.training._monitor import TrainingMonitor, health_record

    consumed = accept(TRAINING.name, run.partition, {"snapshot": snapshot, "hygiene": hygiene})
    section = chosen_model(run, hp)
    family = resolve_family(section.family, section.hyperparameters)
    challengers = section.challenger_families()
    df = run.rows()
    split = load_split(hygiene.split_path, len(df), consumed.split)
    files = run.folder.stage(TRAINING.folder)
    monitor = TrainingMonitor(run.policy.training, {"dagster_run_id": run.run_id, "snapshot_id": run.partition})
    try:
        fit = fit_and_evaluate(df, run.contract, split, family, monitor)
    except TrainingDiverged as e:
        monitor.write_jsonl(files.training_log)
        e.steps, e.artifacts = monitor.step_metrics(), {"model": str(files.training_log)}  # for open_stage
        raise
    table = {}
    if challengers:
        from z4_assets.core.fairness import favourable_rules
        from z4_assets.core.training._challengers import train_challengers, write_table

        fairness_rules, _ = favourable_rules(run.snapshot, run.contract, run.policy.fairness)
        fits, table = train_challengers(df, run.contract, split, fit, challengers, run.policy, fairness_rules)
        fit, family = fits[table["chosen"]], fits[table["chosen"]].family
    written = save_model(files, fit, run.contract, table)
    if table:
        written["challengers"] = write_table(files.challengers, table)
    artifact = written.get("weights") or written["onnx"]
    parity, parity_facts = parity_gate(fit, artifact, run.policy.models.parity_tolerance)
    gates = performance_gates(fit, run.policy, parity)
    atomic_write_json(files.gates, [g.as_dict() for g in gates])
    monitor.write_jsonl(files.training_log)
    steps, health_metrics, health_tags = health_record(monitor)
    params, metrics, tags = tracking_record(fit.hyperparameters, fit, run.contract, split, run.policy)
    test = fit.metrics["test"]
    return ModelOutcome(
        stage=TRAINING.name, partition=run.partition, run_id=run.run_id, gates=tuple(gates),
        files={"model_dir": str(files.dir), "gates": str(files.gates), "training_log": str(files.training_log),
               **{k: str(v) for k, v in written.items()}},
        params={k: str(v) for k, v in params.items()}, metrics={**metrics, **health_metrics},
        tags={**{k: str(v) for k, v in tags.items()}, **health_tags}, steps=tuple(steps),
        artifacts={"model": str(files.dir)},
        facts={"state_dict_sha256": fit.digest, "model_family": family.name, "model_code": family.record(),
               "model_artifact": artifact.name, "artifact_parity": parity_facts,
               "test_auc": test["auc"], "test_ks": test["ks"],
               "test_selection_rate": test["selection_rate"], "test_balanced_accuracy": test["balanced_accuracy"],
               "train_seconds": round(fit.seconds, 3), "training_epochs_run": len(monitor.records),
               "training_schedule": fit.facts.get("schedule", {}),
               "training_warnings": [{k: w[k] for k in ("kind", "epoch", "message")} for w in monitor.warnings],
               **({"challenger_choice": {"chosen": table["chosen"], "reason": table["reason"]}} if table else {})},
        consumed=consumed, produced=Lineage(model=fit.digest))


def chosen_model(run: StageRun, hp: dict):
    """The `model:` section in force: the run config's over the snapshot's dataset config's."""
    from z4_assets.core.training._families import model_section

    dataset_section = None
    path = getattr(run.snapshot, "dataset_config_path", None)
    if path is not None and Path(path).is_file():
        from z4_assets.core.dataset_config import load_dataset_config

        dataset_section = load_dataset_config(path, run.snapshot.dataset_id)[0].model
    hp = dict(hp)
    return model_section(hp.pop("model", None), dataset_section, hp)


def pickles_in(folder) -> list[str]:
    """Files under FOLDER that are pickles (or torch.save zips): the factory refuses them."""
    from z4_assets.core.training._artifact import pickles_in as _pickles

    return _pickles(Path(folder))


def load_model(model: ModelOutcome):
    """(scorer, FeatureSpec, config) of a model outcome, refused unless its artifact is the one its
    lineage names. The scorer: predict_proba(x), family, attack, gradient_module (torch or None)."""
    from z4_assets.core.training._model_io import load_model as _load

    return _load(model.model_dir, model.produced.model)


def load_model_dir(model_dir, expected_digest: str | None = None):
    """(scorer, FeatureSpec, config) from a model folder (a package's model/), digest checked."""
    from z4_assets.core.training._model_io import load_model as _load

    return _load(model_dir, expected_digest)


def score_rows(model: ModelOutcome, df):
    """P(positive) per row of DF, as the model of this outcome computes it."""
    from z4_assets.core.training._scoring import score_rows as _score

    return _score(model.model_dir, df, model.produced.model)


def predict_proba(model, x):
    """P(positive) of a scorer (load_model's) or a bare torch module, as float64."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(x)
    from z4_assets.core.training._mlp import predict_proba as _predict

    return _predict(model, x)


def rebuild_from(source: str, settings, allow_code_drift: bool = False, seed: int | None = None,
                 public_key: str | None = None):
    """`z4 rebuild`: retrain from a package's reproducibility bundle and compare weights bit for bit."""
    from z4_assets.core.training._rebuild import rebuild_from as _rebuild

    return _rebuild(source, settings, allow_code_drift, seed, public_key)


def locate_package(source: str, factory_root, tmp):
    """A package folder from a folder, a .tar.gz (extracted into TMP) or a run id under FACTORY_ROOT."""
    from z4_assets.core.training._rebuild import locate_package as _locate

    return _locate(source, factory_root, tmp)
