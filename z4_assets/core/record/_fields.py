"""The run record: every field an auditor needs, present or explicitly explained, never silently missing."""

from __future__ import annotations


# category -> fields; each field is "tag:<key>", "param:<key>", "metric:<prefix>" or "artifact:<path or prefix*>"
REQUIRED = {
    "code_and_build": ["tag:git_sha", "tag:repo_url", "tag:container_digest", "tag:sbom_ref",
                       "tag:train_image_version"],
    "data": ["tag:dataset_id", "tag:dataset_snapshot_at", "tag:dataset_hash", "tag:feature_groups",
             "tag:data_time_range"],
    "execution": ["tag:run_id", "tag:pipeline_id", "tag:job_id", "tag:orchestrator", "tag:started_at",
                  "tag:ended_at", "tag:seeds"],
    "training": ["param:model_family", "tag:model_code_sha256", "tag:split", "tag:hardware_cpu",
                 "tag:hardware_threads", "tag:hardware_ram", "tag:egress_policy"],
    "metrics": ["metric:test_auc", "metric:test_ks", "metric:subgroup."],
    "hygiene": ["artifact:reports/hygiene/hygiene_report.json", "artifact:reports/snapshot/dataset_manifest.json",
                "artifact:reports/hygiene/privacy_report.json", "artifact:reports/hygiene/leakage_checks.json"],
    "security": ["artifact:reports/security/adv_eval.json", "artifact:reports/security/privacy_eval.json",
                 "artifact:reports/security/robustness_curve*", "artifact:reports/security/output_integrity.json",
                 "artifact:reports/security/security_decision.txt"],
    "artifacts": ["tag:model_artifact_uri", "artifact:checksums.json", "artifact:signatures/model.sig",
                  "artifact:provenance/provenance.intoto.json"],
    "governance": ["artifact:model_card.md"],
    "correlation": ["tag:dagster.run_id", "tag:dagster_asset_keys", "tag:dagster_partition"],
    "access": ["tag:data_purpose", "tag:access_log", "tag:access_log_run_sha256", "artifact:access/access_log.jsonl"],
}


# The model family's own hyperparameters the record must hold (a plug-in: its code digest above).
FAMILY_FIELDS = {
    "mlp": ["param:hidden_sizes", "param:epochs", "param:batch_size", "param:learning_rate",
            "param:weight_decay", "param:seed", "param:threads"],
    "logistic": ["param:C", "param:max_iter", "param:tol", "param:class_weight"],
    "gbdt": ["param:n_estimators", "param:learning_rate", "param:num_leaves", "param:seed", "param:threads"],
}


def family_required(params: dict, required: dict[str, list[str]] = REQUIRED) -> dict[str, list[str]]:
    """REQUIRED plus the fields of the family the run trained (params model_family; mlp before families)."""
    family = str(params.get("model_family", "mlp"))
    out = {k: list(v) for k, v in required.items()}
    out["training"] = out.get("training", []) + FAMILY_FIELDS.get(family, [])
    return out


def missing_fields(tags: dict, params: dict, metrics: dict, artifacts: set[str],
                   required: dict[str, list[str]] = REQUIRED) -> list[str]:
    """Every required field absent from the record, as 'category/field'."""
    missing = []
    if required is REQUIRED:
        required = family_required(params)
    for category, fields in required.items():
        for f in fields:
            kind, key = f.split(":", 1)
            if kind == "tag":
                ok = bool(str(tags.get(key, "")).strip())
            elif kind == "param":
                ok = key in params
            elif kind == "metric":
                ok = any(m == key or m.startswith(key) for m in metrics) if key.endswith(".") else key in metrics
            else:
                ok = any(a.startswith(key[:-1]) for a in artifacts) if key.endswith("*") else key in artifacts
            if not ok:
                missing.append(f"{category}/{key}")
    return missing
