"""Every file name of the factory root and of a run's folder, in one place.

    <factory root>/
      runs/<run id>/<stage folder>/...   evidence, one folder per stage (core/stages.py names them)
      runs/<run id>/intermediate/        the row split and other RET-7 intermediates
      runs/<run id>/access/              this run's lines of the access log
      runs/<run id>/postrun/             cleanup report and retention manifest
      runs/<run id>/incident/            the one incident record of a blocked, crashed or timed-out run
      runs/<run id>/package/, package.tar.gz   the signed package
      scratch/<run id>/                  temp files, caches, secrets: removed when the run ends
      outcomes/<asset>/<partition>.json  the last outcome of each stage per snapshot (the IO manager's store)
      baselines/<dataset id>.json        each dataset's drift baseline profile
      baselines/<dataset id>.reference.parquet  its value counts per feature (sha256 in the profile)
      cache/                             environment-derived files (the SBOM)
      retention/                         `z4 retention apply` reports
      audit/                             the audit chain (core/audit): events, head, delivery cursors

A stage never looks for another's files by scanning: it receives the upstream outcome, whose
`files` name them. This module only says where a stage writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from z4_assets.core.errors import Z4Error

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")

# stage folder -> role -> file name. A file a stage writes is listed here, under its folder.
FILES: dict[str, dict[str, str]] = {
    "snapshot": {"gates": "gates.json", "manifest": "dataset_manifest.json",
                 "manifest_signature": "dataset_manifest.sig"},
    "hygiene": {"gates": "gates.json", "report": "hygiene_report.json", "privacy": "privacy_report.json",
                "leakage": "leakage_checks.json", "summary": "hygiene_summary.md",
                "drift_plot": "drift_per_feature.png", "drift_data": "drift_per_feature.json",
                "drift_distributions": "drift_distributions.png"},
    "model": {"gates": "gates.json", "weights": "model.safetensors", "onnx": "model.onnx",
              "config": "model_config.json", "challengers": "challengers.json",
              "feature_spec": "feature_spec.json", "metrics": "metrics.json", "history": "training_history.json",
              "training_log": "training_log.jsonl"},
    "security": {"gates": "gates.json", "adv_eval": "adv_eval.json", "privacy_eval": "privacy_eval.json",
                 "output_integrity": "output_integrity.json", "robustness_curve": "robustness_curve.png",
                 "security_decision": "security_decision.txt", "suspicious_rows": "suspicious_rows.csv"},
    "fairness": {"gates": "gates.json", "report": "fairness.json", "summary": "fairness_summary.md"},
    "governance": {"gates": "gates.json", "card": "model_card.md", "evidence_index": "evidence_index.json",
                   "policy_trace": "policy_trace.json"},
    "record": {"gates": "gates.json", "record": "run_record.json"},
    "promotion": {"gates": "gates.json", "verify_report": "verify_report.json", "promotion": "promotion.json"},
    "postrun": {"gates": "gates.json", "cleanup_report": "cleanup_report.json",
                "retention_manifest": "retention_manifest.json", "verdict": "verdict.md"},
    "access": {"access_log": "access_log.jsonl"},
    "incident": {"incident": "incident.json"},
    "intermediate": {"split": "split.parquet"},
}
PACKAGE_DIR, PACKAGE_TARBALL = "package", "package.tar.gz"
# <factory root>/audit/: the hash-chained event file (the spool), its head, and per sink (audit, lineage)
# the delivery cursor, the log of permanent refusals and the deliverer's lock; runs/<run id>: its MLflow run id
AUDIT: dict[str, str] = {
    "chain": "events.jsonl", "head": "head.json", "lock": ".append.lock", "runs": "runs",
    **{f"{role}_{sink}": name.format(sink=sink) for sink in ("audit", "lineage") for role, name in
       (("cursor", "delivered.{sink}.log"), ("rejected", "rejected.{sink}.jsonl"), ("deliver_lock", ".deliver.{sink}.lock"))},
}


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise Z4Error(f"invalid run id {run_id!r}: must match {RUN_ID_RE.pattern}")
    return run_id


class StageFiles:
    """One stage folder of a run: `files.report` is the path of its report."""

    def __init__(self, folder: Path, names: dict[str, str]):
        self.dir, self._names = folder, names

    def __getattr__(self, role: str) -> Path:
        try:
            return self.dir / self._names[role]
        except KeyError:
            raise AttributeError(f"{self.dir.name}/ has no file {role!r} (see core/run_folder.FILES)") from None

    def file(self, name: str) -> Path:
        """A file whose name is made from data (a plot per attribute): kept inside the folder."""
        if "/" in name or name.startswith("."):
            raise Z4Error(f"not a plain file name: {name!r}", self.dir)
        return self.dir / name


@dataclass(frozen=True)
class RunFolder:
    """The folders of one Dagster run under the factory root."""

    factory_root: Path
    run_id: str

    def __post_init__(self):
        check_run_id(self.run_id)
        object.__setattr__(self, "factory_root", Path(self.factory_root))

    @property
    def run_dir(self) -> Path:
        """runs/<run id>/: evidence and intermediates, kept per the retention policy."""
        return self.factory_root / "runs" / self.run_id

    @property
    def scratch(self) -> Path:
        """scratch/<run id>/: temp files, caches and secrets; removed when the run ends."""
        return self.factory_root / "scratch" / self.run_id

    @property
    def intermediate(self) -> Path:
        """runs/<run id>/intermediate/: debug sets and samples (RET-7 by default)."""
        return self.run_dir / "intermediate"

    @property
    def postrun(self) -> Path:
        return self.run_dir / "postrun"

    @property
    def package_dir(self) -> Path:
        return self.run_dir / PACKAGE_DIR

    @property
    def package_tarball(self) -> Path:
        return self.run_dir / PACKAGE_TARBALL

    def stage(self, folder: str, create: bool = True) -> StageFiles:
        """The evidence folder of a stage (its `Stage.folder`), or intermediate / access / postrun;
        made unless CREATE is false (a reader)."""
        if create:
            (self.run_dir / folder).mkdir(parents=True, exist_ok=True)
        return StageFiles(self.run_dir / folder, FILES[folder])


@dataclass(frozen=True)
class FactoryRoot:
    """The factory root: run folders, outcomes, baselines, caches."""

    root: Path
    cache_root: Path | None = None

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def run(self, run_id: str) -> RunFolder:
        return RunFolder(self.root, run_id)

    @property
    def cache(self) -> Path:
        return Path(self.cache_root) if self.cache_root else self.root / "cache"

    def baseline(self, dataset_id: str) -> Path:
        return self.root / "baselines" / f"{dataset_id}.json"

    def baseline_reference(self, dataset_id: str) -> Path:
        return self.root / "baselines" / f"{dataset_id}.reference.parquet"

    def outcome(self, asset: str, partition: str) -> Path:
        from z4_assets.core.z3 import parse_snapshot_key

        parse_snapshot_key(partition)  # never a path: it is joined to the root
        return self.root / "outcomes" / asset / f"{partition}.json"

    @property
    def retention(self) -> Path:
        return self.root / "retention"

    @property
    def audit(self) -> Path:
        """audit/: the audit chain and its delivery state (core/audit)."""
        return self.root / "audit"
