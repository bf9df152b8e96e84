"""Where a run's evidence and each dataset's drift baseline are kept (default ./data/factory)."""


from pathlib import Path

import dagster as dg
from pydantic import Field

from z4_assets.core.cleanup._paths import RunPaths
from z4_assets.core.cleanup._scratch import RunScratch
from z4_assets.core.files import atomic_write_json, read_json


class FactoryStorage(dg.ConfigurableResource):
    """Per-run evidence folders and per-dataset baseline profiles."""

    root: str = Field(description="root folder for runs/<dagster run id>/ and baselines/")
    cache_root: str = Field("", description="cache of environment-derived files (SBOM); default <root>/cache")

    def cache_dir(self) -> Path:
        return Path(self.cache_root) if self.cache_root else Path(self.root) / "cache"

    def run_dir(self, run_id: str, stage: str) -> Path:
        d = Path(self.root) / "runs" / run_id / stage
        d.mkdir(parents=True, exist_ok=True)
        return d

    def lineage_run_dirs(self, context: dg.AssetExecutionContext) -> list[Path]:
        """runs/<id>/ of this run, then of the run it re-executes, up to the root run: a retry from
        failure finds the evidence of the stages it did not re-run in its parent's folders."""
        dirs, run_id = [], context.run_id
        while run_id:
            dirs.append(Path(self.root) / "runs" / run_id)
            try:
                run = context.instance.get_run_by_id(run_id)
            except dg.DagsterError:  # an asset invoked directly, outside any instance
                break
            run_id = run.parent_run_id if run is not None else None
        return dirs

    def evidence_dir(self, context: dg.AssetExecutionContext, stage: str) -> Path:
        """The newest folder of STAGE in this run's lineage (this run's own if none has it yet)."""
        dirs = self.lineage_run_dirs(context)
        return next((d / stage for d in dirs if (d / stage).is_dir() and any((d / stage).iterdir())),
                    dirs[0] / stage)

    def baseline_path(self, dataset_id: str) -> Path:
        return Path(self.root) / "baselines" / f"{dataset_id}.json"

    def load_baseline(self, dataset_id: str) -> dict | None:
        p = self.baseline_path(dataset_id)
        return read_json(p) if p.is_file() else None

    def save_baseline(self, dataset_id: str, profile: dict) -> Path:
        return atomic_write_json(self.baseline_path(dataset_id), profile)

    def paths(self, run_id: str) -> RunPaths:
        """runs/<run id>/ (evidence, intermediate/, postrun/) and scratch/<run id>/ of one run."""
        return RunPaths(Path(self.root), run_id)

    def scratch(self, run_id: str) -> RunScratch:
        """The run's scratch space (temp files, caches, secrets); removed when the run ends."""
        return RunScratch(self.paths(run_id))

    def intermediate_dir(self, run_id: str) -> Path:
        """runs/<run id>/intermediate/: debug sets and samples, kept per the RET-7 class."""
        d = self.paths(run_id).intermediate
        d.mkdir(parents=True, exist_ok=True)
        return d
