"""The k8s_job_executor (one pod per step) with the step policy applied and tags refused."""

import json

import dagster as dg
from dagster_k8s import k8s_job_executor

from z4_assets.core.k8s_policy import require_digest, require_digests_in
from z4_assets.k8s.guard import DigestGuardedClient
from z4_assets.k8s.steps import executor_config, load_policy, steps_path

K8S_CONFIG_TAG = "dagster-k8s/config"


def _origin_image(job) -> str | None:
    """The code location's image (DAGSTER_CURRENT_IMAGE, set by the Helm chart from values)."""
    try:
        return job.get_python_origin().repository_origin.container_image
    except AttributeError:  # an in-memory job has no origin; job_image must then be configured
        return None


def _check_images(init_context: dg.InitExecutorContext, config: dict) -> None:
    image = config.get("job_image") or _origin_image(init_context.job)
    require_digest(image, "k8s executor: job_image (or the code location's DAGSTER_CURRENT_IMAGE)")
    require_digests_in({k: config.get(k) for k in ("step_k8s_config", "per_step_k8s_config")},
                       "k8s executor config")
    for node in init_context.job.get_definition().graph.nodes:
        tag = node.definition.tags.get(K8S_CONFIG_TAG)
        if tag:
            require_digests_in(json.loads(tag), f"op {node.name}: tag {K8S_CONFIG_TAG}")


def _create_executor(init_context: dg.InitExecutorContext):
    policy = load_policy()
    op_names = [node.name for node in init_context.job.get_definition().graph.nodes]
    config = executor_config(policy, dict(init_context.executor_config), op_names)
    _check_images(init_context, config)  # before the executor exists, so before any pod
    executor = k8s_job_executor.executor_creation_fn(init_context._replace(executor_config=config))
    # dagster-k8s 0.29 (pinned): StepDelegatingExecutor._step_handler is the K8sStepHandler and
    # its _api_client creates the Jobs. test_k8s_specs fails if this stops being true.
    handler = executor._step_handler
    handler._api_client = DigestGuardedClient(handler._api_client, "k8s executor")
    return executor


z4_k8s_executor = dg.ExecutorDefinition(
    name="z4_k8s",
    config_schema=k8s_job_executor.config_schema,
    requirements=dg.multiple_process_executor_requirements(),
    executor_creation_fn=_create_executor,
    description=("dagster-k8s's k8s_job_executor (one Kubernetes Job per step) with deploy/steps.yaml "
                 f"applied (default path {steps_path()}) and every image required to be pinned by digest."),
)
