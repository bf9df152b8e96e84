"""Bounded pods: every rendered step Job carries activeDeadlineSeconds above the policy's step time-out
(the clean time-out fires first; the Job deadline is the backstop), and the namespace quota fits the
concurrent runs deploy/dagster.yaml allows."""

from __future__ import annotations

import yaml

from z4_assets.core.k8s_policy import load_steps_policy, parse_quantity
from z4_assets.core.policy import load_policy
from z4_assets_tests.k8s_api import kubernetes_validate
from z4_assets_tests.test_k8s_specs import ROOT, rendered  # noqa: F401 (fixture: one real Job per step)

STEPS = load_steps_policy(ROOT / "deploy" / "steps.yaml")
RUNS = load_policy(None, "").runs
QUOTA = ROOT / "deploy" / "k8s" / "resourcequota.yaml"


def test_every_rendered_step_job_has_a_deadline_above_the_policy_time_out(rendered):  # noqa: F811
    for step, job in rendered["jobs"].items():
        deadline = job["spec"].get("activeDeadlineSeconds")
        assert deadline == STEPS.resolved(step).active_deadline_seconds, step
        assert deadline >= RUNS.timeout(step) + 60, f"{step}: the pod would die before the clean time-out"


def test_the_run_pod_outlives_every_step_time_out_added_up():
    total = sum(RUNS.timeout(step) for step in rendered_steps())
    assert STEPS.run_worker.active_deadline_seconds >= total


def rendered_steps() -> list[str]:
    from z4_assets.core.stages import STAGES

    return [s.asset for s in STAGES]


def test_the_quota_is_valid_and_fits_the_allowed_concurrent_runs():
    proc = kubernetes_validate([QUOTA])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (quota, limit_range) = list(yaml.safe_load_all(QUOTA.read_text()))
    hard = quota["spec"]["hard"]
    runs = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())["run_coordinator"]["config"][
        "max_concurrent_runs"]
    for kind in ("requests", "limits"):
        for res in ("cpu", "memory"):
            worker = parse_quantity(getattr(STEPS.run_worker, kind)[res], "run_worker")
            steps = sorted((parse_quantity(getattr(STEPS.resolved(s), kind)[res], s) for s in rendered_steps()),
                           reverse=True)
            need = runs * (worker + steps[0] + steps[1])  # the two evaluation steps may overlap
            have = parse_quantity(hard[f"{kind}.{res}"], "quota")
            assert need <= have, (kind, res, need, have)
    assert limit_range["kind"] == "LimitRange" and limit_range["spec"]["limits"][0]["default"]
