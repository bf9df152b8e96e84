"""Verified serving (issue 17): a registered model is an MLflow pyfunc whose load_context verifies the
signed package (digest against the registry tag, signature, completeness, every bound tag, the policy
tags, the artifact's digest: `z4 load`'s checks) before it reads a byte of the model, and scores
through onnxruntime or safetensors. No pickle is written or read: the pyfunc is "models from code"
(pyfunc_entry.py), its only artifact is the package tarball.

`z4 score NAME@ALIAS input.csv` scores a file with the same verification (load_verified)."""

from __future__ import annotations

from pathlib import Path

ENTRY = Path(__file__).with_name("pyfunc_entry.py")
SCORE_COLUMN = "score"

__all__ = ["ENTRY", "SCORE_COLUMN", "Z4PackageModel", "pyfunc_files", "score_frame"]


def score_frame(model, spec, df):
    """P(positive) per row of DF (raw contract columns) as a one-column DataFrame."""
    import pandas as pd

    missing = [c["name"] for c in spec.columns if c["name"] not in df.columns]
    if missing:
        from z4_assets.core.errors import Z4Error

        raise Z4Error(f"input lacks the model's feature column {missing[0]!r} ({len(missing)} missing)")
    return pd.DataFrame({SCORE_COLUMN: model.predict_proba(spec.transform(df))}, index=df.index)


def pyfunc_files(out_dir: Path, tarball: Path, model_name: str, mlflow_run_id: str) -> Path:
    """The pyfunc model folder (MLmodel, the entry code, the package tarball as its one artifact)."""
    import mlflow.pyfunc

    mlflow.pyfunc.save_model(path=str(out_dir), python_model=str(ENTRY), artifacts={"package": str(tarball)},
                             model_config={"model_name": model_name, "mlflow_run_id": mlflow_run_id},
                             pip_requirements=["z4-model-factory"])
    return out_dir


def _model_class():
    import mlflow.pyfunc

    class Z4PackageModel(mlflow.pyfunc.PythonModel):
        """Scores only a package that verifies; refuses a tampered one with one line."""

        def load_context(self, context):
            import tempfile

            from mlflow.tracking import MlflowClient

            from z4_assets.core.errors import Z4Error
            from z4_assets.core.promotion import open_verified
            from z4_assets.core.settings import Settings
            from z4_assets.core.tracking import default_tracking_uri

            cfg = context.model_config or {}
            name, run_id = cfg.get("model_name"), cfg.get("mlflow_run_id")
            settings = Settings.from_env()
            uri = settings.mlflow_tracking_uri or default_tracking_uri()
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            versions = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
            if not versions:
                raise Z4Error(f"{name}: refusing to serve: no registry version of run {run_id}")
            version = max(versions, key=lambda v: int(v.version))
            where = f"{name} version {version.version}"
            self._tmp = tempfile.TemporaryDirectory(prefix="z4-serve-")
            self.model, self.spec, self.config, self.metadata, self.checks = open_verified(
                Path(context.artifacts["package"]), where, dict(version.tags), settings.signing_pubkey_path,
                Path(self._tmp.name) / "x", z3_public_key=settings.z3_pubkey or None)

        def predict(self, context, model_input, params=None):
            import pandas as pd

            frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            return score_frame(self.model, self.spec, frame)

    return Z4PackageModel


def __getattr__(name):
    if name == "Z4PackageModel":
        return _model_class()
    raise AttributeError(name)
