"""Where the step policy file lives and how it becomes dagster-k8s executor configuration."""

from pathlib import Path
from typing import Any

from z4_assets.core.k8s_policy import (StepsPolicy, load_steps_policy, per_step_k8s_config,
                                       step_k8s_config)

DEFAULT_STEPS = Path(__file__).resolve().parents[2] / "deploy" / "steps.yaml"


def steps_path() -> Path:
    """$Z4_K8S_STEPS (the ConfigMap mount in the cluster), else deploy/steps.yaml of this checkout."""
    from z4_assets.core.settings import Settings

    return Path(Settings.from_env().k8s_steps or DEFAULT_STEPS)


def load_policy(path: str | Path | None = None) -> StepsPolicy:
    return load_steps_policy(path or steps_path())


def _deep_merge(onto: dict, extra: dict) -> dict:
    out = dict(onto)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = [*out[key], *value]
        else:
            out[key] = value
    return out


def executor_config(policy: StepsPolicy, user: dict[str, Any], op_names: list[str]) -> dict[str, Any]:
    """The k8s executor's config: the run config's own settings, with the policy's pod settings
    underneath them and the policy's per-op size and security contexts on top."""
    cfg = dict(user)
    cfg["step_k8s_config"] = _deep_merge(step_k8s_config(policy), user.get("step_k8s_config") or {})
    user_per_step = user.get("per_step_k8s_config") or {}
    policy_per_step = per_step_k8s_config(policy, op_names)
    cfg["per_step_k8s_config"] = {
        op: _deep_merge(user_per_step.get(op, {}), policy_per_step.get(op, {}))
        for op in sorted(set(user_per_step) | set(policy_per_step))
    }
    return cfg


def asset_steps(defs) -> dict[str, dict[str, str]]:
    """Every asset step (op name -> op tags) of the Definitions, as the executor would launch them."""
    job = defs.resolve_implicit_global_asset_job_def()
    return {node.name: dict(node.definition.tags) for node in job.graph.nodes}
