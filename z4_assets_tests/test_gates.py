"""A gate's three verdicts: PASS, FAIL, and INSUFFICIENT_EVIDENCE, which measured nothing and blocks as the policy says."""

from __future__ import annotations

import dagster as dg

from z4_assets.checks import check_results
from z4_assets.core.gates import FAIL, INSUFFICIENT, PASS, GateSpec, render_markdown, verdict_word
from z4_assets.core.outcome import StageOutcome

SPEC = GateSpec("performance_auc", "test AUC")


def test_compare_passes_and_fails_on_the_measured_value():
    assert SPEC.compare(0.8, ">=", 0.7, "test AUC").verdict == PASS
    failed = SPEC.compare(0.6, ">=", 0.7, "test AUC")
    assert failed.verdict == FAIL and not failed.passed and failed.summary.startswith("FAILED")
    assert SPEC.compare(float("nan"), ">=", 0.7, "test AUC").verdict == FAIL


def test_insufficient_evidence_reports_no_value_and_blocks_as_told():
    blocking = SPEC.insufficient("42 test rows, need 200", ">=", 0.7, blocks=True, details={"rows": 42})
    allowed = SPEC.insufficient("42 test rows, need 200", ">=", 0.7, blocks=False)
    assert blocking.verdict == allowed.verdict == INSUFFICIENT
    assert blocking.value is None and not blocking.passed and allowed.passed
    assert blocking.as_dict()["verdict"] == INSUFFICIENT and "42 test rows" in blocking.summary
    assert verdict_word(blocking) == "insufficient evidence, blocks"
    assert verdict_word(allowed.as_dict()) == "insufficient evidence"
    table = render_markdown("t", [blocking, allowed])
    assert "| performance_auc | **insufficient evidence, blocks** | not measured | >= 0.7 |" in table


def test_a_stage_blocked_by_insufficient_evidence_names_it_and_round_trips():
    gate = SPEC.insufficient("too few rows", ">=", 0.7, blocks=True)
    outcome = StageOutcome(stage="training", partition="d@s", run_id="r", gates=(gate,))
    again = StageOutcome.model_validate_json(outcome.model_dump_json())
    assert not again.passed and again.blocked_by == "performance_auc"
    assert again.gates[0].sufficient is False and again.gates[0].value is None


def test_the_check_shows_no_measured_value_and_the_decision():
    (result,) = check_results([SPEC.insufficient("too few rows", ">=", 0.7, blocks=True)])
    assert result.passed is False and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["measured"].value == "not measured: insufficient evidence"
    assert result.metadata["decision"].value == INSUFFICIENT
