"""Promotion to the MLflow Model Registry (Z5), and serving-side loading that verifies first."""

from __future__ import annotations

import tempfile
from pathlib import Path

from z4_assets.core.promotion._consume import PACKAGE_ARTIFACT

ALIAS = "candidate"


def registry_copy_problem(client, mlflow_run_id: str, package_sha256: str) -> str | None:
    """Why the package a version would point at (the run's `package/package.tar.gz`) is not the verified
    one, or None: a version is never registered over missing or other artifacts."""
    from mlflow.exceptions import MlflowException

    from z4_assets.core.files import sha256_file

    with tempfile.TemporaryDirectory(prefix="z4-registry-copy-") as tmp:
        try:
            local = Path(client.download_artifacts(mlflow_run_id, f"{PACKAGE_ARTIFACT}/package.tar.gz", tmp))
        except (MlflowException, OSError) as e:
            return (f"the MLflow run {mlflow_run_id} holds no package artifact to register "
                    f"({type(e).__name__}: {str(e).splitlines()[0][:160]})")
        if not local.is_file() or sha256_file(local) != package_sha256:
            return f"the MLflow run {mlflow_run_id}'s package artifact differs from the verified package"
    return None


def register_candidate(client, model_name: str, mlflow_run_id: str, package_sha256: str,
                       tags: dict[str, str], alias: str = ALIAS, description: str = "",
                       tarball: str | Path | None = None):
    """Create a model version whose source is the run's signed package, and point alias at it. With
    TARBALL (the verified package), the source is also an MLflow pyfunc (`mlflow models serve -m
    models:/NAME@ALIAS`) whose load_context verifies that package before scoring (core/serving)."""
    from mlflow.exceptions import MlflowException

    if tarball is not None:
        from z4_assets.core.serving import pyfunc_files

        with tempfile.TemporaryDirectory(prefix="z4-pyfunc-") as tmp:
            folder = pyfunc_files(Path(tmp) / "pyfunc", Path(tarball), model_name, mlflow_run_id)
            client.log_artifacts(mlflow_run_id, str(folder), PACKAGE_ARTIFACT)

    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(model_name, description="z4 model factory output")
    source = client.get_run(mlflow_run_id).info.artifact_uri.rstrip("/") + f"/{PACKAGE_ARTIFACT}"
    version = client.create_model_version(
        model_name, source=source, run_id=mlflow_run_id,
        tags={"package_sha256": package_sha256, **tags}, description=description or None)
    client.set_registered_model_alias(model_name, alias, version.version)
    return version


def load_model_by_alias(model_name: str, public_key: str | Path | None, alias: str = ALIAS,
                        tracking_uri: str | None = None, identity: str | None = None,
                        issuer: str | None = None):
    """(model, FeatureSpec, config) of the version behind alias, only after `z4 load`'s checks pass
    (core/promotion/_consume.py: links, tags against the signed package, offline verification)."""
    from z4_assets.core.promotion._consume import load_verified

    loaded = load_verified(f"{model_name}@{alias}", public_key, tracking_uri, identity, issuer)
    return loaded.model, loaded.feature_spec, loaded.config
