"""Gates as blocking Dagster asset checks, and a stage outcome as the asset's materialization."""

from __future__ import annotations

import json

import dagster as dg

from z4_assets.core.files import json_default
from z4_assets.core.gates import Gate
from z4_assets.core.outcome import StageOutcome
from z4_assets.core.runbooks import gate_runbook
from z4_assets.core.stages import Stage


def blocking_specs(stage: Stage) -> list[dg.AssetCheckSpec]:
    """One blocking check per gate the stage table gives the stage."""
    return [dg.AssetCheckSpec(g.name, asset=stage.asset, blocking=True, description=g.description)
            for g in stage.gates]


def metadata_value(v):
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, bool):
        return dg.MetadataValue.bool(v)
    if isinstance(v, int):
        return dg.MetadataValue.int(v)
    if isinstance(v, float):
        return dg.MetadataValue.float(v)
    if isinstance(v, (dict, list, tuple)):
        return dg.MetadataValue.json(json.loads(json.dumps(v, default=json_default)))
    return dg.MetadataValue.text(str(v))


def check_results(gates) -> list[dg.AssetCheckResult]:
    results = []
    for g in gates:
        metadata = {
            "measured": metadata_value(g.value) if g.sufficient else dg.MetadataValue.text(
                "not measured: insufficient evidence"),
            "threshold": metadata_value(g.threshold),
            "rule": dg.MetadataValue.text(f"measured {g.comparison} threshold"),
            "verdict": dg.MetadataValue.text(g.summary),
            "decision": dg.MetadataValue.text(g.verdict),
            "runbook": dg.MetadataValue.path(gate_runbook(g.name)),
        }
        if g.details:
            metadata["evidence"] = dg.MetadataValue.json(json.loads(json.dumps(g.details, default=json_default)))
        results.append(dg.AssetCheckResult(
            check_name=g.name, passed=g.passed, severity=dg.AssetCheckSeverity.ERROR,
            description=g.summary, metadata=metadata))
    return results


def first_failure(gates: list[Gate]) -> str | None:
    failed = [g.name for g in gates if not g.passed]
    return ",".join(failed) if failed else None


MARKDOWN_FACTS = ("summary", "card", "decision_reasons")


def materialize(outcome: StageOutcome, rec=None) -> dg.MaterializeResult:
    """The outcome as the asset's value (kept by the outcome store), its facts, files and plots as
    metadata, its gates as blocking check results. REC: the stage's MLflow record, for links."""
    from z4_assets.evidence import plot_metadata

    metadata: dict = {}
    for key, value in outcome.facts.items():
        if key in MARKDOWN_FACTS:
            metadata[key] = dg.MetadataValue.md(value)
        elif key.endswith("_url") and str(value).startswith(("http://", "https://")):
            metadata[key] = dg.MetadataValue.url(value)
        else:
            metadata[key] = metadata_value(value)
    for role, path in outcome.files.items():
        if role not in outcome.plots:
            metadata[f"file_{role}"] = dg.MetadataValue.path(path)
    for key, plot in outcome.plots.items():
        url = None
        if rec is not None:
            folder = next((a for a, local in outcome.artifacts.items() if plot.path.startswith(local)), None)
            url = rec.artifact_url(f"{folder}/{plot.path.rsplit('/', 1)[-1]}") if folder else None
        metadata.update(plot_metadata(key, plot.path, plot.title, url))
    if rec is not None:
        metadata["mlflow_run_id"] = dg.MetadataValue.text(rec.run_id)
        metadata["mlflow_run_url"] = dg.MetadataValue.url(rec.url)
    metadata["lineage"] = dg.MetadataValue.json(outcome.lineage.model_dump())
    return dg.MaterializeResult(value=outcome, metadata=metadata, check_results=check_results(outcome.gates))
