"""The last gate before the Kubernetes API: no Job whose containers are not pinned by digest."""

from typing import Any

from z4_assets.core.k8s_policy import require_digest, images_in
from z4_assets.k8s.signed import require_signed_digest


class DigestGuardedClient:
    """Wraps dagster-k8s's API client; creating a Job checks every image in the final body first.

    The launcher and the executor also check their configured images early (with a clearer
    message); this catches what only the merged body shows: an `image` set in a
    `dagster-k8s/config` tag, a per-step override or a sidecar container.
    """

    def __init__(self, client: Any, where: str):
        self._client = client
        self._where = where

    def create_namespaced_job_with_retries(self, body: Any, namespace: str, **kwargs: Any) -> None:
        doc = body.to_dict() if hasattr(body, "to_dict") else dict(body)
        name = (doc.get("metadata") or {}).get("name", "?")
        images = images_in(doc.get("spec") or {})
        if not images:
            require_digest(None, f"{self._where}: Job {name}")
        for path, image in images:
            require_digest(image, f"{self._where}: Job {name} {path}")
            require_signed_digest(image, f"{self._where}: Job {name} {path}")
        return self._client.create_namespaced_job_with_retries(body=body, namespace=namespace, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
