"""`z4 rebuild`: re-run training from a run's reproducibility bundle and compare weights bit for bit."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file
from z4_assets.core.packaging import REPRO_MANIFEST as MANIFEST


@dataclass
class RebuildResult:
    identical: bool
    recorded_digest: str
    rebuilt_digest: str
    metric_deltas: dict = field(default_factory=dict)
    mlflow_run_id: str = ""
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{'IDENTICAL' if self.identical else 'DIFFERENT'}",
               f"  recorded state_dict sha256: {self.recorded_digest}",
               f"  rebuilt  state_dict sha256: {self.rebuilt_digest}"]
        if not self.identical:
            out += [f"  {k}: {v['recorded']:.6f} -> {v['rebuilt']:.6f} (delta {v['delta']:+.6f})"
                    for k, v in self.metric_deltas.items()]
        out += [f"  note: {n}" for n in self.notes]
        out.append(f"  MLflow run: {self.mlflow_run_id}")
        return out


def locate_package(source: str, factory_root: Path, tmp: Path) -> Path:
    """A package folder from a folder, a .tar.gz, or a Dagster run id under the factory root."""
    from z4_assets.core.packaging import extract_tarball

    p = Path(source)
    if p.is_file():
        return extract_tarball(p, tmp)
    if p.is_dir():
        return p
    candidate = factory_root / "runs" / source / "package"
    if candidate.is_dir():
        return candidate
    raise Z4Error(f"no package or run {source!r} (looked in {candidate})")


def rebuild(pkg: Path, settings, allow_code_drift: bool = False, seed: int | None = None) -> RebuildResult:
    """Same snapshot (verified by hash), same config and seeds; a new MLflow run tagged rebuild_of."""
    from z4_assets.core.contract import load_contract
    from z4_assets.core.policy import SplitPolicy, load_policy
    from z4_assets.core.settings import PSEUDONYM_KEY_ENV
    from z4_assets.core.training._fit import fit_and_evaluate
    from z4_assets.core.provenance import code_version
    from z4_assets.core.provenance import hardware
    from z4_assets.core.split import assign_split, row_hashes
    from z4_assets.core.tracking import RunRecorder
    from z4_assets.core import broker
    from z4_assets.core.z3 import resolve_snapshot

    path = pkg / MANIFEST
    if not path.is_file():
        raise Z4Error("no reproducibility bundle (repro/manifest.json): only PASS runs have one", pkg)
    m = json.loads(path.read_text())
    dataset_id, snapshot_id = m["dataset"].split("@", 1)
    try:
        ref = resolve_snapshot(settings.z3_root, dataset_id, snapshot_id)
    except Z4Error:
        raise Z4Error(f"refusing to rebuild: snapshot {m['dataset']} is missing from {settings.z3_root}") from None
    actual = sha256_file(ref.data_path)
    if actual != m["dataset_hash"]:
        raise Z4Error(f"refusing to rebuild: snapshot {m['dataset']} changed (sha256 {actual[:16]}..., "
                      f"recorded {m['dataset_hash'][:16]}...)", ref.data_path)
    if sha256_file(ref.contract_path) != m["contract_hash"]:
        raise Z4Error(f"refusing to rebuild: the contract of {m['dataset']} changed", ref.contract_path)
    notes = []
    code = code_version()["git_sha"]
    if code != m["git_sha"]:
        if not allow_code_drift:
            raise Z4Error(f"refusing to rebuild: code is at {code[:12]}, the record at {m['git_sha'][:12]} "
                          "(check out that commit, or pass --allow-code-drift)")
        notes.append(f"code drift allowed: built with {code[:12]}, recorded {m['git_sha'][:12]}")
    hp = dict(m["hyperparameters"])
    if seed is not None and "seed" in hp and seed != hp["seed"]:
        hp["seed"] = seed
        notes.append(f"seed overridden: {m['hyperparameters']['seed']} -> {seed}")
    now_hw = hardware(int(hp.get("threads", 1)))
    if m.get("hardware") and m["hardware"].get("hardware_cpu") != now_hw["hardware_cpu"]:
        notes.append(f"CPU differs from the record ({m['hardware']['hardware_cpu']}): bits may differ")

    contract, _ = load_contract(ref.contract_path)
    # through the broker, with the factory's key: the same pseudonyms, so the same rows and split
    purpose = m.get("purpose") or load_policy(settings.policy or None, ref.dataset_id).access.purpose
    df = broker.read_snapshot(ref, contract, purpose=purpose, identity=broker.who(),
                              run_id=f"rebuild-of-{m['dagster_run_id']}",
                              key=broker.load_key(os.environ.get(PSEUDONYM_KEY_ENV, ""), settings.pseudonym_key_file),
                              log_path=settings.access_log_path, reader="z4 rebuild")
    split, _ = assign_split(df, contract, SplitPolicy(**m["split_policy"]), row_hashes(df, contract.candidate_features))
    from z4_assets.core.training._families import resolve_family

    if m.get("model_family", "mlp") == "mlp":  # a record from before the converged default: what it trained with
        hp = {"epochs": 8, "patience": 0, "class_weight": "none", **hp}
    family = resolve_family(m.get("model_family", "mlp"), hp)
    recorded_code = (m.get("model_code") or {}).get("code_sha256")
    if recorded_code and recorded_code != family.code_sha256:
        if not allow_code_drift:
            raise Z4Error(f"refusing to rebuild: the code of model family {family.name} has sha256 "
                          f"{family.code_sha256[:12]}, the record {recorded_code[:12]}")
        notes.append(f"model family code drift allowed: {family.code_sha256[:12]} vs recorded {recorded_code[:12]}")
    outcome = fit_and_evaluate(df, contract, split, family)
    rebuilt = outcome.digest
    identical = rebuilt == m["state_dict_sha256"]
    with tempfile.TemporaryDirectory(prefix="z4-rebuild-artifact-") as tmp:
        artifact = Path(outcome.model.save(tmp))
        artifact_sha = sha256_file(artifact)
    if m.get("model_artifact_sha256") and artifact_sha != m["model_artifact_sha256"]:
        identical = False
        notes.append(f"exported artifact {artifact.name} bytes differ: sha256 {artifact_sha[:16]}... vs recorded "
                     f"{m['model_artifact_sha256'][:16]}...")
    if not identical:
        notes.append(nondeterminism_note(family.name, m, hp))
    deltas = {}
    for split_name, metrics in outcome.metrics.items():
        for key in ("auc", "ks"):
            old = m.get("metrics", {}).get(split_name, {}).get(key)
            if old is not None:
                deltas[f"{split_name}_{key}"] = {"recorded": old, "rebuilt": metrics[key],
                                                 "delta": metrics[key] - old}
    recorder = RunRecorder(settings.mlflow_tracking_uri, settings.mlflow_experiment)
    run = recorder.client.create_run(recorder.experiment_id, run_name=f"rebuild-{m['mlflow_run_id'][:8]}", tags={
        "rebuild_of": m["mlflow_run_id"], "rebuild_of_dagster_run": m["dagster_run_id"],
        "rebuild_result": "IDENTICAL" if identical else "DIFFERENT", "recorded_state_dict_sha256": m["state_dict_sha256"],
        "state_dict_sha256": rebuilt, "dataset": m["dataset"], "dataset_hash": m["dataset_hash"], "git_sha": code})
    recorder.log(run.info.run_id, params=hp, metrics={k: v["rebuilt"] for k, v in deltas.items()})
    recorder.client.set_terminated(run.info.run_id, "FINISHED")
    return RebuildResult(identical, m["state_dict_sha256"], rebuilt, deltas, run.info.run_id, notes)


def nondeterminism_note(family: str, m: dict, hp: dict) -> str:
    """What this factory knows can make the bits differ, for the family rebuilt."""
    known = {"mlp": "torch kernels: MKL_CBWR / CPU instruction set, torch build, thread count",
             "gbdt": "LightGBM: version, threads (deterministic=True and force_row_wise=True are set)",
             "logistic": "scikit-learn/scipy lbfgs: BLAS build and CPU instruction set"}
    return (f"cannot reproduce bit for bit: known sources for {family}: {known.get(family, 'the plug-in code')}; "
            f"recorded hardware {m.get('hardware', {}).get('hardware_cpu', 'unknown')}, threads {hp.get('threads', 1)}")


def rebuild_from(source: str, settings, allow_code_drift: bool = False, seed: int | None = None,
                 public_key: str | None = None) -> RebuildResult:
    """Locate the package, verify it when a public key is at hand, then rebuild (SETTINGS: core.settings)."""
    from z4_assets.core.packaging import verify_package

    with tempfile.TemporaryDirectory(prefix="z4-rebuild-") as tmp:
        pkg = locate_package(source, Path(settings.factory_root), Path(tmp))
        note = "package signature not checked (no public key found)"
        if public_key and Path(public_key).is_file():
            report = verify_package(pkg, public_key)
            if not report.ok:
                raise Z4Error(f"refusing to rebuild from an unverified package: {report.first_problem}", pkg)
            note = "package verified"
        result = rebuild(pkg, settings, allow_code_drift, seed)
        result.notes.insert(0, note)
        return result
