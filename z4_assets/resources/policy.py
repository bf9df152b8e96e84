"""The promotion policy file (Z4_POLICY, default: the policy.yaml shipped with the package)."""


import dagster as dg
from pydantic import Field

from z4_assets.core.policy import load_policy


class PolicyStore(dg.ConfigurableResource):
    """Thresholds for every gate, with per-dataset overrides."""

    path: str = Field("", description="policy YAML; empty means the packaged default")

    def for_dataset(self, dataset_id: str) -> dict:
        return load_policy(self.path or None, dataset_id)
