"""Verified consumption (`z4 load NAME@ALIAS`): serving and Z5 take a model only when the registry
version, its MLflow run and its signed package all say the same thing.

The registry is editable by more people than the factory: a version's source can point at another
package, its tags can be edited in the UI, a version can be created by hand with no run behind it.
So nothing the registry says is taken on trust: the package is fetched from the artifact store of
the run the version names, verified offline (`z4 verify`), and every fact the factory tagged the
version with is compared with the signed metadata inside it. Any disagreement is refused, naming it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from z4_assets.core.errors import Z4Error

PACKAGE_ARTIFACT = "package"
PACKAGE_TARBALL = "package.tar.gz"
# registry tag -> the field of the package's signed metadata.json it must equal
BOUND_TAGS = {"mlflow_run_id": "mlflow_run_id", "dagster_run_id": "dagster_run_id", "dataset": "dataset",
              "dataset_hash": "dataset_hash", "state_dict_sha256": "state_dict_sha256",
              "decision": "decision", "git_sha": "git_sha"}
REQUIRED_TAGS = ("package_sha256", *BOUND_TAGS)


@dataclass
class Loaded:
    """A model that passed every check, with what was checked."""

    name: str
    alias: str
    version: str
    model: object
    feature_spec: object
    config: dict
    facts: dict = field(default_factory=dict)     # the package's metadata.json
    checks: list[str] = field(default_factory=list)


def parse_model_ref(ref: str) -> tuple[str, str]:
    name, sep, alias = str(ref).partition("@")
    if not (sep and name and alias) or "/" in name or "@" in alias:
        raise Z4Error(f"expected NAME@ALIAS (e.g. z4-taiwan_credit_default@candidate), got {ref!r}")
    return name, alias


def _version(client, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as e:
        raise Z4Error(f"{name}@{alias}: no such registered model version ({e.error_code})") from None


def open_verified(local: Path, where: str, tags: dict, public_key, workdir: Path, identity: str | None = None,
                  issuer: str | None = None, z3_public_key=None):
    """(scorer, FeatureSpec, config, metadata, checks) of a local package tarball, only after: its sha256
    is the registry tag's, it verifies offline, every bound tag equals its signed metadata, the policy
    tags match, and the artifact's digest is the signed one. Nothing of the model is read before."""
    from z4_assets.core.files import sha256_file
    from z4_assets.core.packaging import extract_tarball, verify_package
    from z4_assets.core.settings import Settings
    from z4_assets.core.training import load_model_dir

    checks = []
    digest = sha256_file(local)
    if digest != tags["package_sha256"]:
        raise Z4Error(f"{where}: refusing to load: package digest differs from the registry tag "
                      f"package_sha256 ({digest[:16]}... != {tags['package_sha256'][:16]}...)")
    checks.append("package digest matches the registry tag")
    limits = Settings.from_env().package_limits
    report = verify_package(local, public_key, identity, issuer, limits, z3_public_key=z3_public_key)
    if not report.ok:
        raise Z4Error(f"{where}: refusing to load: {report.first_problem}")
    checks.append(f"package verifies offline ({len(report.checks)} checks)")
    pkg = extract_tarball(local, workdir, limits)
    try:
        metadata = json.loads((pkg / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise Z4Error(f"{where}: the package's metadata.json is unreadable ({type(e).__name__})") from None
    checks += check_metadata(where, tags, metadata)
    checks.append(check_policy_tags(where, tags, pkg))
    # the loader recomputes the artifact's digest (ONNX bytes or safetensors tensors) and compares
    model, spec, config = load_model_dir(pkg / "model", metadata.get("state_dict_sha256"))
    checks.append(f"loaded {config.get('artifact', 'model')} matches the signed model digest")
    return model, spec, config, metadata, checks


def check_links(client, where: str, version) -> tuple[object, str]:
    """(the version's MLflow run, where its package must be). Refuses an orphan (no run, or a run
    that is gone), a source other than that run's package, a run of another Dagster run, and a
    version missing any tag the factory writes."""
    from mlflow.exceptions import MlflowException

    if not version.run_id:
        raise Z4Error(f"{where}: orphan version: it names no MLflow run, so nothing proves how it was built")
    try:
        run = client.get_run(version.run_id)
    except MlflowException:
        raise Z4Error(f"{where}: orphan version: its MLflow run {version.run_id} does not exist") from None
    if run.info.lifecycle_stage != "active":
        raise Z4Error(f"{where}: orphan version: its MLflow run {version.run_id} is {run.info.lifecycle_stage}")
    expected = f"{run.info.artifact_uri.rstrip('/')}/{PACKAGE_ARTIFACT}"
    if version.source.rstrip("/") != expected:
        raise Z4Error(f"{where}: the version's source {version.source} is not the package of its run "
                      f"{version.run_id} ({expected}): the registry points at another package")
    tags = version.tags or {}
    missing = [t for t in REQUIRED_TAGS if not tags.get(t)]
    if missing:
        raise Z4Error(f"{where}: tag {missing[0]} is missing (the factory writes {', '.join(REQUIRED_TAGS)}): "
                      "not a version the factory registered, or its tags were removed")
    if tags["mlflow_run_id"] != version.run_id:
        raise Z4Error(f"{where}: tag mlflow_run_id={tags['mlflow_run_id']} but the version's run is {version.run_id}")
    run_dagster = run.data.tags.get("dagster.run_id")
    if run_dagster != tags["dagster_run_id"]:
        raise Z4Error(f"{where}: tag dagster_run_id={tags['dagster_run_id']} but its MLflow run belongs to "
                      f"Dagster run {run_dagster}")
    return run, expected


def check_metadata(where: str, tags: dict, metadata: dict) -> list[str]:
    """Every factory tag equals the signed metadata's field; the decision is PASS."""
    for tag, key in BOUND_TAGS.items():
        if str(metadata.get(key)) != tags[tag]:
            raise Z4Error(f"{where}: registry tag {tag}={tags[tag]!r} but the signed package says "
                          f"{key}={metadata.get(key)!r} (tag edited, or the package swapped)")
    if metadata.get("decision") != "PASS":
        raise Z4Error(f"{where}: the package's decision is {metadata.get('decision')!r}, not PASS")
    return [f"tag {t} matches the signed package" for t in BOUND_TAGS]


def check_policy_tags(where: str, tags: dict, pkg: Path) -> str:
    """The version's policy.* tags must be what the signed package's policy trace says: an edited tag
    (a loosened gate erased, another digest) refuses the load."""
    from z4_assets.core.policy_trace import registry_tags
    from z4_assets.core.run_folder import FILES
    from z4_assets.core.stages import GOVERNANCE

    path = pkg / GOVERNANCE.package_dir / FILES[GOVERNANCE.folder]["policy_trace"]
    if not path.is_file():
        raise Z4Error(f"{where}: the package holds no policy trace", path)
    signed = registry_tags(json.loads(path.read_text(encoding="utf-8")))
    edited = sorted(k for k, v in signed.items() if tags.get(k) != v)
    if edited:
        raise Z4Error(f"{where}: registry tags {', '.join(edited)} differ from the signed package's policy trace", path)
    return "policy.* tags match the signed policy trace"


def load_verified(ref: str, public_key: str | Path | None, tracking_uri: str | None = None,
                  identity: str | None = None, issuer: str | None = None,
                  z3_public_key: str | Path | None = None) -> Loaded:
    """The model behind NAME@ALIAS, only after every check passes (see the module docstring)."""
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    from z4_assets.core.tracking import default_tracking_uri

    name, alias = parse_model_ref(ref)
    uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = _version(client, name, alias)
    where = f"{name}@{alias} (version {version.version})"
    _, source = check_links(client, where, version)
    tags = dict(version.tags)
    checks = ["version links to its MLflow run and that run's package", "every factory tag present"]
    with tempfile.TemporaryDirectory(prefix="z4-load-") as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{source}/{PACKAGE_TARBALL}",
                                                             dst_path=tmp, tracking_uri=uri))
        except Exception as e:  # MLflow raises per store: missing file, permissions, server errors
            raise Z4Error(f"{where}: cannot fetch {source}/{PACKAGE_TARBALL}: {type(e).__name__}") from None
        model, spec, config, metadata, more = open_verified(local, where, tags, public_key, Path(tmp) / "x",
                                                            identity, issuer, z3_public_key)
        checks += more
        return Loaded(name, alias, str(version.version), model, spec, config, metadata, checks)
