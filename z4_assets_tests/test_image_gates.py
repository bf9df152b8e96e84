"""Real factory runs (host, in process) against the image rules: a made-up container_digest fails the
record's completeness gate, and a host run is not promoted when the policy requires a signed image."""

from __future__ import annotations

import pytest

from z4_assets.core.z3 import add_snapshot
from z4_assets_tests.conftest import (DATASET, SAMPLE_CONTRACT, SAMPLE_DATASET_CONFIG, check_metadata,
                                      check_verdicts, downstream_of, make_resources, run_factory, started)


@pytest.fixture
def sample_resources(tmp_path, sample_df, signing_key, cache_root):
    data = tmp_path / "data.parquet"
    sample_df.to_parquet(data, index=False)
    add_snapshot(tmp_path / "z3", DATASET, SAMPLE_CONTRACT, data, dataset_config=SAMPLE_DATASET_CONFIG)
    return lambda: make_resources(tmp_path, tmp_path / "z3", signing_key, cache_root)


def test_completeness_gate_fails_on_a_made_up_container_digest(sample_resources, monkeypatch):
    made_up = "sha256:" + "12" * 32
    monkeypatch.setenv("Z4_CONTAINER_DIGEST", made_up)
    # this host has a network: the in-container egress probe would (rightly) stop the run first.
    # Replaced here so the run reaches the record stage, the gate under test.
    monkeypatch.setattr("z4_assets.core.egress.observed_in_container", lambda: "deny-all (test stand-in)")
    result = run_factory(sample_resources())
    verdicts = check_verdicts(result)
    assert verdicts["run_record_complete"] is False
    missing = check_metadata(result, "run_record_complete")["evidence"]["missing"]
    assert any(m.startswith("code_and_build/container_digest (") and made_up[:20] in m for m in missing)
    assert not started(result) & downstream_of("run_record"), "nothing downstream of the failed gate starts"


def test_host_run_is_not_promoted_when_the_policy_requires_a_signed_image(sample_resources, monkeypatch, tmp_path):
    monkeypatch.delenv("Z4_CONTAINER_DIGEST", raising=False)
    override = tmp_path / "policy.yaml"
    override.write_text("defaults:\n  promotion:\n    require_signed_image: true\n")
    monkeypatch.setenv("Z4_TEST_POLICY", str(override))
    result = run_factory(sample_resources())
    verdicts = check_verdicts(result)
    assert verdicts["run_record_complete"] is True  # "none" is an honest digest
    assert verdicts["trained_in_signed_image"] is False
    meta = check_metadata(result, "trained_in_signed_image")
    assert "container_digest is none" in str(meta)
    assert not started(result) & downstream_of("promotion"), "nothing downstream of the failed gate starts"
