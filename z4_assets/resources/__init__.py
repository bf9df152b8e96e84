"""Every outside system the factory talks to, as a typed Dagster resource."""

from z4_assets.resources.policy import PolicyStore
from z4_assets.resources.storage import FactoryStorage
from z4_assets.resources.tracking import MlflowTracking
from z4_assets.resources.z3_store import Z3Store

__all__ = ["FactoryStorage", "MlflowTracking", "PolicyStore", "Z3Store"]
