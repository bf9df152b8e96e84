"""Overrides leave a trace: the effective policy, its digest and its diff against the shipped defaults go
into the signed package, the model card (its own section, the loosened gates by name) and the registry
version's tags; the card's Limitations list every disparity past the shipped default, gated or not."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest
from mlflow.tracking import MlflowClient

from z4_assets.core.fairness._gates import GATES
from z4_assets.core.governance._card import render_card
from z4_assets.core.governance._evidence import gather
from z4_assets.core.policy import load_policy
from z4_assets.core.policy_trace import policy_trace, registry_tags, shipped_defaults
from z4_assets.core.run_folder import FILES, StageFiles
from z4_assets.resources import PolicyStore
from z4_assets.core.z3 import add_snapshot
from z4_assets_tests.conftest import (DATASET, SAMPLE_CONTRACT, SAMPLE_DATASET_CONFIG, check_verdicts, make_resources,
                                      run_factory)

LOOSE = """\
datasets:
  taiwan_credit_default:
    fairness:
      demographic_parity_ratio_min: 0.5
      ks_diff_max: 0.5
    security:
      poisoning:
        max_flagged_share: 1.0
    performance:
      test_auc_min: 0.75
"""


def test_the_shipped_defaults_have_an_empty_diff_and_a_stable_digest():
    a, b = policy_trace(load_policy(None, DATASET)), policy_trace(shipped_defaults())
    assert a["overridden"] is False and a["diff"] == [] and a["loosened_gates"] == []
    assert a["digest"] == b["digest"] == a["shipped_digest"] and len(a["digest"]) == 64


def test_an_override_is_named_key_by_key_with_the_gates_it_loosens(tmp_path):
    path = tmp_path / "loose.yaml"
    path.write_text(LOOSE)
    t = policy_trace(load_policy(path, DATASET))
    by_key = {d["key"]: d for d in t["diff"]}
    assert by_key["fairness.demographic_parity_ratio_min"] == {
        "key": "fairness.demographic_parity_ratio_min", "shipped": 0.8, "effective": 0.5,
        "gates": ["fairness_demographic_parity_ratio"], "effect": "loosened"}
    assert by_key["performance.test_auc_min"]["effect"] == "tightened"  # 0.75 is above the shipped 0.7
    assert t["loosened_gates"] == ["fairness_demographic_parity_ratio", "fairness_ks_diff", "poisoning_share"]
    assert t["tightened_gates"] == ["performance_auc"]
    assert t["overridden"] and t["digest"] != t["shipped_digest"] and t["source"] == str(path)
    tags = registry_tags(t)
    assert tags["policy.loosened_gates"] == "fairness_demographic_parity_ratio,fairness_ks_diff,poisoning_share"
    assert json.loads(tags["policy.diff"])[0]["key"] == "fairness.demographic_parity_ratio_min"
    # switching a gate off is loosening it, and the same values give the same digest whatever the file says
    off = tmp_path / "off.yaml"
    off.write_text("defaults:\n  security:\n    poisoning:\n      insufficient_blocks: false\n")
    t2 = policy_trace(load_policy(off, DATASET))
    assert t2["loosened_gates"] == ["poisoning_clusters", "poisoning_share"]
    parity = tmp_path / "parity.yaml"
    parity.write_text("defaults:\n  models:\n    parity_tolerance: 0.01\n")
    assert policy_trace(load_policy(parity, DATASET))["loosened_gates"] == ["artifact_parity"]
    same = tmp_path / "same.yaml"
    same.write_text("datasets:\n  taiwan_credit_default:\n    fairness: {ks_diff_max: 0.12}\n")
    assert policy_trace(load_policy(same, DATASET))["digest"] == policy_trace(load_policy(None, DATASET))["digest"]


def test_a_long_diff_is_cut_in_the_tags_and_says_so(tmp_path):
    t = policy_trace(load_policy(None, DATASET))
    t = {**t, "overridden": True, "diff": [{"key": f"k{i}", "shipped": 0, "effective": 1, "effect": "changed",
                                           "gates": []} for i in range(400)]}
    tag = registry_tags(t)["policy.diff"]
    assert len(tag) <= 4000 and tag.endswith("400 keys in governance/policy_trace.json)")


@pytest.fixture(scope="module")
def loose_run(sample_df, signing_key, cache_root, tmp_path_factory):
    """A whole factory run on the sample under the loose override (a forked partial run has no training
    record, so it could not reach the registry)."""
    tmp = tmp_path_factory.mktemp("loose")
    policy = tmp / "loose.yaml"
    policy.write_text(LOOSE)
    data = tmp / "data.parquet"
    sample_df.to_parquet(data, index=False)
    add_snapshot(tmp / "z3", DATASET, SAMPLE_CONTRACT, data, dataset_config=SAMPLE_DATASET_CONFIG)
    resources = {**make_resources(tmp, tmp / "z3", signing_key, cache_root), "policy": PolicyStore(path=str(policy))}
    result = run_factory(resources)
    return {"result": result, "resources": resources, "run_dir": tmp / "factory" / "runs" / result.run_id,
            "policy": policy}


def test_a_loosened_run_says_so_in_the_package_the_card_and_the_registry(loose_run):
    result, run_dir = loose_run["result"], loose_run["run_dir"]
    assert result.success and check_verdicts(result)["release_gates_pass"] is True
    expected = policy_trace(load_policy(loose_run["policy"], DATASET))
    # the signed package holds the trace, under its checksums
    with tarfile.open(run_dir / "package.tar.gz") as tar:
        names = tar.getnames()
        member = next(n for n in names if n.endswith("governance/policy_trace.json"))
        packaged = json.load(tar.extractfile(member))
        sums = json.load(tar.extractfile(next(n for n in names if n.endswith("checksums.json"))))
    assert packaged["digest"] == expected["digest"] and packaged["loosened_gates"] == expected["loosened_gates"]
    assert any(k.endswith("governance/policy_trace.json") for k in sums["files"])
    assert packaged["effective"]["fairness"]["demographic_parity_ratio_min"] == 0.5
    # the card: a visible section, and the loosened gates by name next to "any failure stops the factory"
    card = (run_dir / "governance" / "model_card.md").read_text()
    section = card.split("## Policy in force")[1].split("\n## ")[0]
    assert expected["digest"] in section and "Overridden: 4 key(s)" in section
    assert "Gates loosened or disabled: fairness_demographic_parity_ratio, fairness_ks_diff, poisoning_share" in section
    assert "| fairness.demographic_parity_ratio_min | `0.8` | `0.5` | loosened | fairness_demographic_parity_ratio |" \
        in section
    safeguards = card.split("## Safeguards")[1].split("\n## ")[0]
    assert "Loosened or disabled by this run's policy (not the shipped defaults): fairness_demographic_parity_ratio" \
        in safeguards
    # the registry version's tags
    client = MlflowClient(loose_run["resources"]["mlflow"].tracking_uri)
    (version,) = client.search_model_versions(f"name = 'z4-{DATASET}'")
    tags = version.tags
    assert tags["policy.digest"] == expected["digest"] and tags["policy.overridden"] == "true"
    assert tags["policy.loosened_gates"] == "fairness_demographic_parity_ratio,fairness_ks_diff,poisoning_share"
    assert {d["key"] for d in json.loads(tags["policy.diff"])} == {d["key"] for d in expected["diff"]}


def test_the_fixture_run_names_its_one_change_as_loosening_auc_and_ks(sample_factory_run):
    """The test fixtures run under fixture_policy.yaml (AUC/KS decided on the point estimate, not the
    shipped interval): the card, the trace and the registry tags name exactly that change, and call it
    loosening (a straddling interval that would read insufficient passes on its estimate)."""
    run_dir = sample_factory_run["run_dir"]
    card = (run_dir / "governance" / "model_card.md").read_text()
    section = card.split("## Policy in force")[1].split("\n## ")[0]
    assert "| performance.gate_on | `interval` | `point` | loosened | performance_auc, performance_ks |" in section
    assert "The shipped defaults, unchanged." not in section
    assert "Gates loosened or disabled: performance_auc, performance_ks" in section
    client = MlflowClient(sample_factory_run["resources"]["mlflow"].tracking_uri)
    (version,) = client.search_model_versions(f"name = 'z4-{DATASET}'")
    assert version.tags["policy.overridden"] == "true"
    assert version.tags["policy.loosened_gates"] == "performance_auc,performance_ks"
    assert [d["key"] for d in json.loads(version.tags["policy.diff"])] == ["performance.gate_on"]


def test_limitations_list_every_disparity_past_the_shipped_default_gated_or_not(sample_factory_run, tmp_path):
    """A gated attribute whose parity ratio passed only because the run's policy loosened it is listed."""
    run = tmp_path / "run"
    shutil.copytree(sample_factory_run["run_dir"], run)
    report_path = run / "fairness" / "fairness.json"
    report = json.loads(report_path.read_text())
    attr = report["gated_attributes"][0]
    report["attributes"][attr]["disparities"]["demographic_parity_ratio"]["value"] = 0.61
    report_path.write_text(json.dumps(report))
    files = {"fairness_report": report_path}
    for piece, (folder, role) in {"snapshot_manifest": ("snapshot", "manifest"), "snapshot_gates": ("snapshot", "gates"),
                                  "hygiene_report": ("hygiene", "report"), "hygiene_gates": ("hygiene", "gates"),
                                  "model_config": ("model", "config"), "model_metrics": ("model", "metrics"),
                                  "model_gates": ("model", "gates"), "feature_spec": ("model", "feature_spec"),
                                  "security_decision": ("security", "security_decision"),
                                  "adversarial_eval": ("security", "adv_eval"),
                                  "privacy_eval": ("security", "privacy_eval")}.items():
        files[piece] = getattr(StageFiles(run / folder, FILES[folder]), role)
    ev = gather(sample_factory_run["ref"], files)
    policy = tmp_path / "loose.yaml"
    policy.write_text(LOOSE)
    loose = load_policy(policy, DATASET)
    ev.pieces["policy_trace"] = policy_trace(loose)
    thresholds = {d: (k, op, getattr(loose.fairness, k)) for d, (k, op, _) in GATES.items()}
    ids = {"dagster_run_id": "r1", "mlflow_run_id": "m1", "git_sha": "abc123", "dataset_hash": "h"}
    card, _ = render_card(ev, ids, thresholds)
    limitations = card.split("## Limitations and risks")[1].split("\n## ")[0]
    assert (f"- demographic_parity_ratio for {attr} is 0.6100 (shipped default >= 0.8; offending group "
            in limitations), limitations
    assert "gated against this run's looser >= 0.5" in limitations
    # without the override the same value is a plain gated breach, still listed
    ev.pieces["policy_trace"] = policy_trace(load_policy(None, DATASET))
    plain = {d: (k, op, getattr(load_policy(None, DATASET).fairness, k)) for d, (k, op, _) in GATES.items()}
    card, _ = render_card(ev, ids, plain)
    assert f"demographic_parity_ratio for {attr} is 0.6100 (shipped default >= 0.8" in card


def test_an_edited_registry_tag_refuses_the_load(loose_run, signing_key):
    """Erasing a loosened gate from the registry (or any policy.* tag) no longer matches the signed trace."""
    from z4_assets.core.errors import Z4Error
    from z4_assets.core.promotion._registry import load_model_by_alias

    uri = loose_run["resources"]["mlflow"].tracking_uri
    client = MlflowClient(uri)
    (version,) = client.search_model_versions(f"name = 'z4-{DATASET}'")
    pub = signing_key.with_name("signing.pub.pem")
    model, _, _ = load_model_by_alias(f"z4-{DATASET}", pub, tracking_uri=uri)
    assert model is not None
    honest = version.tags["policy.loosened_gates"]
    try:
        client.set_model_version_tag(f"z4-{DATASET}", version.version, "policy.loosened_gates", "none")
        with pytest.raises(Z4Error, match="registry tags policy.loosened_gates differ from the signed package"):
            load_model_by_alias(f"z4-{DATASET}", pub, tracking_uri=uri)
        client.delete_model_version_tag(f"z4-{DATASET}", version.version, "policy.loosened_gates")
        with pytest.raises(Z4Error, match="policy.loosened_gates differ"):
            load_model_by_alias(f"z4-{DATASET}", pub, tracking_uri=uri)
    finally:
        client.set_model_version_tag(f"z4-{DATASET}", version.version, "policy.loosened_gates", honest)


def test_the_shipped_defaults_say_so_in_the_card_section():
    """With no override, the trace has no diff and the card's section says the defaults were in force."""
    from types import SimpleNamespace

    from z4_assets.core.governance._card import _policy

    t = policy_trace(load_policy(None, DATASET))
    assert t["overridden"] is False and t["diff"] == [] and t["loosened_gates"] == []
    lines = _policy(SimpleNamespace(get=lambda k: t))
    assert lines[-1] == "The shipped defaults, unchanged." and f"`{t['digest']}`" in "\n".join(lines)


@pytest.mark.parametrize("section, value, effect", [
    ("performance", "point", "loosened"),         # shipped interval: a straddling CI would pass on its estimate
    ("fairness", "ci_low", "loosened"),           # shipped point: fails only when the whole CI breaches
    ("fairness", "interval", "tightened"),        # shipped point: passes only when the whole CI complies
    ("fairness", "ci_high", "tightened"),
])
def test_reading_the_interval_more_leniently_is_loosening(tmp_path, section, value, effect):
    path = tmp_path / "gate_on.yaml"
    path.write_text(f"defaults:\n  {section}:\n    gate_on: {value}\n")
    t = policy_trace(load_policy(path, DATASET))
    (d,) = [d for d in t["diff"] if d["key"] == f"{section}.gate_on"]
    assert d["effect"] == effect
    assert (set(d["gates"]) <= set(t["loosened_gates"])) == (effect == "loosened")
