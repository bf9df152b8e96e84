"""Where runs keep their evidence, stages their outcomes and datasets their drift baselines (default ./data/factory)."""

import dagster as dg
from pydantic import Field

from z4_assets.core.run_folder import FactoryRoot, RunFolder


class FactoryStorage(dg.ConfigurableResource):
    """The factory root: run folders, outcomes, baselines, caches (core/run_folder.py names every file)."""

    root: str = Field(description="root folder for runs/, scratch/, outcomes/, baselines/")
    cache_root: str = Field("", description="cache of environment-derived files (SBOM); default <root>/cache")

    def factory(self) -> FactoryRoot:
        return FactoryRoot(self.root, self.cache_root or None)

    def folder(self, run_id: str) -> RunFolder:
        """runs/<run id>/ (evidence, intermediate/, postrun/) and scratch/<run id>/ of one run."""
        return self.factory().run(run_id)

    def scratch(self, run_id: str):
        """The run's scratch space (temp files, caches, secrets); removed when the run ends."""
        from z4_assets.core.cleanup import RunScratch

        return RunScratch(self.folder(run_id))
