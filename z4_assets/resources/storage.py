"""Where runs keep their evidence, stages their outcomes and datasets their drift baselines (default ./data/factory)."""

import dagster as dg
from pydantic import Field

from z4_assets.core.run_folder import FactoryRoot, RunFolder


class FactoryStorage(dg.ConfigurableResource):
    """The factory root: run folders, outcomes, baselines, caches (core/run_folder.py names every file)."""

    root: str = Field(description="root folder for runs/, scratch/, outcomes/, baselines/")
    cache_root: str = Field("", description="cache of environment-derived files (SBOM); default <root>/cache")
    audit_url: str = Field("", description="Z9 audit endpoint (CloudEvents); set only via dg.EnvVar('Z4_AUDIT_URL')")
    openlineage_url: str = Field("", description="OpenLineage server base URL; set only via dg.EnvVar('OPENLINEAGE_URL')")
    actor_oidc_subject: str = Field("", description="the authenticated actor (OIDC subject) given by CI/deployment")

    def factory(self) -> FactoryRoot:
        return FactoryRoot(self.root, self.cache_root or None)

    def folder(self, run_id: str) -> RunFolder:
        """runs/<run id>/ (evidence, intermediate/, postrun/) and scratch/<run id>/ of one run."""
        return self.factory().run(run_id)

    def scratch(self, run_id: str):
        """The run's scratch space (temp files, caches, secrets); removed when the run ends."""
        from z4_assets.core.cleanup import RunScratch

        return RunScratch(self.folder(run_id))

    def audit(self):
        """The audit stream (core/audit): the chain under <root>/audit/, delivered to Z9 when URLs are set."""
        from z4_assets.core.audit import AuditTrail

        return AuditTrail(self.factory().audit, self.audit_url, self.openlineage_url, self.actor_oidc_subject)
