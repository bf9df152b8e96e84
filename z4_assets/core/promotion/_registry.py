"""Promotion to the MLflow Model Registry (Z5), and serving-side loading that verifies first."""

from __future__ import annotations

import tempfile
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.packaging import extract_tarball, verify_package

ALIAS = "candidate"
PACKAGE_ARTIFACT = "package"


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
                       tags: dict[str, str], alias: str = ALIAS):
    """Create a model version whose source is the run's signed package, and point alias at it."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(model_name, description="z4 model factory output")
    source = client.get_run(mlflow_run_id).info.artifact_uri.rstrip("/") + f"/{PACKAGE_ARTIFACT}"
    version = client.create_model_version(
        model_name, source=source, run_id=mlflow_run_id,
        tags={"package_sha256": package_sha256, **tags})
    client.set_registered_model_alias(model_name, alias, version.version)
    return version


def load_model_by_alias(model_name: str, public_key: str | Path | None, alias: str = ALIAS,
                        tracking_uri: str | None = None, identity: str | None = None,
                        issuer: str | None = None):
    """(model, FeatureSpec, config) of the version behind alias, only after `z4 verify` passes."""
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    from z4_assets.core.files import sha256_file
    from z4_assets.core.training import load_model_dir as load_model
    from z4_assets.core.tracking import default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias(model_name, alias)
    with tempfile.TemporaryDirectory(prefix="z4-load-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=f"{version.source}/package.tar.gz", dst_path=tmp, tracking_uri=uri))
        if sha256_file(local) != version.tags.get("package_sha256"):
            raise Z4Error(f"{model_name}@{alias}: package digest differs from the registered one", local)
        report = verify_package(local, public_key, identity, issuer)
        if not report.ok:
            raise Z4Error(f"{model_name}@{alias}: refusing to load: {report.first_problem}", local)
        pkg = extract_tarball(local, Path(tmp) / "x")
        _check_policy_tags(version.tags, pkg, f"{model_name}@{alias}")
        return load_model(pkg / "model")


def _check_policy_tags(tags: dict, pkg: Path, what: str) -> None:
    """The version's policy.* tags must be what the signed package's policy trace says: an edited tag
    (a loosened gate erased, another digest) refuses the load."""
    import json

    from z4_assets.core.policy_trace import registry_tags
    from z4_assets.core.run_folder import FILES
    from z4_assets.core.stages import GOVERNANCE

    path = pkg / GOVERNANCE.package_dir / FILES[GOVERNANCE.folder]["policy_trace"]
    if not path.is_file():
        raise Z4Error(f"{what}: the package holds no policy trace", path)
    signed = registry_tags(json.loads(path.read_text(encoding="utf-8")))
    edited = sorted(k for k, v in signed.items() if tags.get(k) != v)
    if edited:
        raise Z4Error(f"{what}: registry tags {', '.join(edited)} differ from the signed package's policy trace", path)
