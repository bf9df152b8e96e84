"""Every outside system the factory talks to, as a typed Dagster resource."""

from z4_assets.resources.broker import SnapshotBroker
from z4_assets.resources.policy import PolicyStore
from z4_assets.resources.revoker import NoopRevoker, TokenRevoker, VaultRevoker
from z4_assets.resources.vault import VaultSecrets
from z4_assets.resources.storage import FactoryStorage
from z4_assets.resources.tracking import MlflowTracking
from z4_assets.resources.z3_store import S3Z3Store, Z3SnapshotStore, Z3Store

__all__ = ["FactoryStorage", "MlflowTracking", "NoopRevoker", "PolicyStore", "S3Z3Store",
           "TokenRevoker", "VaultRevoker", "VaultSecrets", "Z3SnapshotStore", "Z3Store"]
__all__ += ["SnapshotBroker"]
