"""`z4 load NAME@ALIAS` (issue 15, item 5): a registered model is used only when the registry version,
its MLflow run and its signed package agree. Every registry-side attack is made on a copy of the
shared run's version under another model name, so the shared `candidate` stays as it was."""

from __future__ import annotations

import itertools

import pytest
from mlflow.tracking import MlflowClient

from z4_assets.cli import main
from z4_assets.core.errors import Z4Error
from z4_assets.core.promotion import load_verified
from z4_assets.core.promotion._consume import BOUND_TAGS

MODEL = "z4-taiwan_credit_default"
_names = itertools.count()


@pytest.fixture(scope="module")
def registry(sample_factory_run, signing_key):
    assert sample_factory_run["result"].success
    uri = sample_factory_run["resources"]["mlflow"].tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return {"client": client, "uri": uri, "pub": str(signing_key.with_name("signing.pub.pem")),
            "v1": client.get_model_version_by_alias(MODEL, "candidate"),
            "tar": sample_factory_run["run_dir"] / "package.tar.gz"}


def copy_version(reg, source=None, run_id=..., tags=None) -> str:
    """A version under a fresh model name, by default an exact copy of the shared candidate; its ref."""
    client, v1 = reg["client"], reg["v1"]
    name = f"z4-attack-{next(_names)}"
    client.create_registered_model(name)
    v = client.create_model_version(name, source=source or v1.source,
                                    run_id=v1.run_id if run_id is ... else run_id,
                                    tags=dict(v1.tags) if tags is None else tags)
    client.set_registered_model_alias(name, "candidate", v.version)
    return f"{name}@candidate"


def refused(reg, ref: str) -> str:
    with pytest.raises(Z4Error) as e:
        load_verified(ref, reg["pub"], reg["uri"])
    line = str(e.value)
    assert "\n" not in line
    return line


def test_the_factorys_candidate_loads_after_every_check(registry):
    loaded = load_verified(f"{MODEL}@candidate", registry["pub"], registry["uri"])
    assert loaded.version == str(registry["v1"].version)
    assert loaded.facts["mlflow_run_id"] == registry["v1"].run_id and loaded.facts["decision"] == "PASS"
    assert "loaded model.safetensors matches the signed model digest" in loaded.checks
    assert all(f"tag {t} matches the signed package" in loaded.checks for t in BOUND_TAGS)
    # an exact copy of the version (same run, source and tags) is as good: the control for the attacks below
    assert load_verified(copy_version(registry), registry["pub"], registry["uri"]).facts == loaded.facts


def test_the_cli_loads_and_says_what_it_checked(registry, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry["uri"])
    assert main(["load", f"{MODEL}@candidate", "--key", registry["pub"]]) == 0
    out = capsys.readouterr().out
    assert f"LOADED: {MODEL}@candidate = version {registry['v1'].version}" in out
    assert "ok   package verifies offline" in out
    assert main(["load", "no-such-model@candidate", "--key", registry["pub"]]) == 2
    assert "z4: error: no-such-model@candidate: no such registered model version" in capsys.readouterr().err


@pytest.mark.parametrize("tag", sorted(BOUND_TAGS))
def test_a_tag_edited_in_the_registry_is_refused_naming_it(registry, tag):
    ref = copy_version(registry)
    name = ref.split("@")[0]
    value = "FAIL" if tag == "decision" else "edited-in-the-ui"
    registry["client"].set_model_version_tag(name, "1", tag, value)
    line = refused(registry, ref)
    assert f"tag {tag}=" in line, line


def test_a_removed_tag_is_refused(registry):
    tags = dict(registry["v1"].tags)
    del tags["dataset_hash"]
    assert "tag dataset_hash is missing" in refused(registry, copy_version(registry, tags=tags))


def test_an_edited_package_digest_tag_is_refused(registry):
    tags = {**registry["v1"].tags, "package_sha256": "0" * 64}
    assert "package digest differs from the registry tag package_sha256" in refused(registry, copy_version(registry, tags=tags))


def test_an_orphan_version_is_refused(registry):
    assert "orphan version: it names no MLflow run" in refused(registry, copy_version(registry, run_id=None))


@pytest.fixture(autouse=True)
def _delete_other_runs(registry):
    """The attacker's runs live in the session's shared store: deleted after each test, so no other
    test finds a second MLflow run tagged with the sample's Dagster run id."""
    made: list[str] = []
    registry["made_runs"] = made
    yield
    for run_id in made:
        registry["client"].delete_run(run_id)


def _other_run(registry, dagster_run_id: str):
    """Another MLflow run holding a copy of the package (what an attacker can create with registry access)."""
    client = registry["client"]
    exp = client.get_run(registry["v1"].run_id).info.experiment_id
    run = client.create_run(exp, tags={"dagster.run_id": dagster_run_id})
    registry.setdefault("made_runs", []).append(run.info.run_id)
    client.log_artifact(run.info.run_id, str(registry["tar"]), "package")
    client.set_terminated(run.info.run_id)
    return run


def test_a_version_pointed_at_another_package_is_refused(registry):
    other = _other_run(registry, registry["v1"].tags["dagster_run_id"])
    swapped = copy_version(registry, source=f"{other.info.artifact_uri}/package")  # claims the factory's run
    assert "is not the package of its run" in refused(registry, swapped)


def test_a_version_moved_to_another_run_with_copied_tags_is_refused(registry):
    other = _other_run(registry, registry["v1"].tags["dagster_run_id"])
    moved = copy_version(registry, source=f"{other.info.artifact_uri}/package", run_id=other.info.run_id)
    assert f"tag mlflow_run_id={registry['v1'].run_id} but the version's run is {other.info.run_id}" \
        in refused(registry, moved)


def test_a_version_whose_run_and_tags_were_all_rewritten_is_refused_by_the_signed_metadata(registry):
    other = _other_run(registry, registry["v1"].tags["dagster_run_id"])
    tags = {**registry["v1"].tags, "mlflow_run_id": other.info.run_id}
    forged = copy_version(registry, source=f"{other.info.artifact_uri}/package", run_id=other.info.run_id, tags=tags)
    assert "but the signed package says mlflow_run_id=" in refused(registry, forged)


def test_a_run_of_another_dagster_run_is_refused(registry):
    other = _other_run(registry, "another-dagster-run")
    tags = {**registry["v1"].tags, "mlflow_run_id": other.info.run_id}
    forged = copy_version(registry, source=f"{other.info.artifact_uri}/package", run_id=other.info.run_id, tags=tags)
    assert "its MLflow run belongs to Dagster run another-dagster-run" in refused(registry, forged)
