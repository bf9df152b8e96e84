"""K8sRunLauncher that locks the run pod down and refuses any image not pinned by digest."""

from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import UserDefinedDagsterK8sConfig

from z4_assets.core.k8s_policy import require_digest, require_digests_in, run_worker_k8s_config
from z4_assets.k8s.guard import DigestGuardedClient
from z4_assets.k8s.signed import require_signed_digest
from z4_assets.k8s.steps import load_policy


class DigestPinnedK8sRunLauncher(K8sRunLauncher):
    """Configured exactly like K8sRunLauncher (deploy/dagster.yaml), plus the steps policy.

    A tagged `job_image` fails when the instance loads; a tagged code-location image fails in
    `launch_run` before the run's Job is built; any other image reaching the API is stopped by
    DigestGuardedClient. The run pod gets `pod` and `run_worker` from deploy/steps.yaml (read at
    each launch, from $Z4_K8S_STEPS), applied last so run tags cannot loosen them. The step pods
    are the executor's business (z4_assets.k8s.executor): this config does not leak into them.
    """

    def __init__(self, *args, **kwargs):
        if kwargs.get("job_image"):
            require_digest(kwargs["job_image"], "run_launcher.config.job_image")
        require_digests_in(kwargs.get("run_k8s_config") or {}, "run_launcher.config.run_k8s_config")
        super().__init__(*args, **kwargs)
        # dagster-k8s 0.29 (pinned): every Job this launcher creates goes through _api_client.
        self._api_client = DigestGuardedClient(self._api_client, "run launcher")

    def get_container_context_for_run(self, dagster_run) -> K8sContainerContext:
        hardening = UserDefinedDagsterK8sConfig.from_dict(run_worker_k8s_config(load_policy()))
        return super().get_container_context_for_run(dagster_run).merge(
            K8sContainerContext(run_k8s_config=hardening))

    def launch_run(self, context) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        image = (origin.repository_origin.container_image if origin else None) or self.job_image
        where = f"run {run.run_id}: code location image (DAGSTER_CURRENT_IMAGE) or run_launcher.config.job_image"
        require_signed_digest(require_digest(image, where), where)
        super().launch_run(context)
