"""Gates as blocking Dagster asset checks: the measured value always sits next to its threshold."""

from __future__ import annotations

import json

import dagster as dg

from z4_assets.core.files import json_default
from z4_assets.core.gates import Gate


def blocking_specs(asset: str, descriptions: dict[str, str]) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name, asset=asset, blocking=True, description=text)
            for name, text in descriptions.items()]


def _value(v):
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, bool):
        return dg.MetadataValue.bool(v)
    if isinstance(v, int):
        return dg.MetadataValue.int(v)
    if isinstance(v, float):
        return dg.MetadataValue.float(v)
    return dg.MetadataValue.text(str(v))


def check_results(gates: list[Gate]) -> list[dg.AssetCheckResult]:
    results = []
    for g in gates:
        metadata = {
            "measured": _value(g.value),
            "threshold": _value(g.threshold),
            "rule": dg.MetadataValue.text(f"measured {g.comparison} threshold"),
            "verdict": dg.MetadataValue.text(g.summary),
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
