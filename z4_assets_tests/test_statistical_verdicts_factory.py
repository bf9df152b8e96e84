"""Statistical verdicts in real factory runs: a tiny test split is insufficient evidence and blocks
(shown as such, not as a number); a model that flags nobody fails the operating point while its
AUC passes, and nothing downstream runs; the default training on loanapp gets past both."""

from __future__ import annotations

from z4_assets.assets import hygiene_report, trained_model, z3_snapshot
from z4_assets.core.gates import INSUFFICIENT
from z4_assets_tests.conftest import (CONVERGED_TRAIN, check_metadata, check_verdicts, downstream_of, run_factory, started)
from z4_assets_tests.small_credit import LOANAPP, loanapp_files, taiwan_sample

BACKBONE = [z3_snapshot, hygiene_report, trained_model]
# The training defaults before issue 16 (8 fixed epochs, no weighting, no early stopping)
BEFORE = {"epochs": 8, "class_weight": "none", "patience": 0}


def _register_loanapp(tmp_path, z3_root):
    from z4_assets.core.z3 import add_snapshot

    contract, data, config = loanapp_files(tmp_path / "loanapp")
    ref, _ = add_snapshot(z3_root, LOANAPP, contract, data, dataset_config=config)
    return ref


def _packaged_policy(resources: dict) -> dict:
    """The resources with the packaged default policy (the fixtures gate AUC/KS on the point estimate)."""
    from z4_assets.resources import PolicyStore

    return {**resources, "policy": PolicyStore(path="")}


def test_a_tiny_test_split_blocks_performance_as_insufficient_evidence(register, factory_resources):
    register(taiwan_sample(400, seed=3))            # ~80 test rows, ~18 positives
    result = run_factory(_packaged_policy(factory_resources))
    verdicts = check_verdicts(result)
    assert verdicts["snapshot_hash"] and verdicts["holdout_leak"], "it got to training"
    for gate in ("performance_auc", "performance_ks", "operating_point"):
        meta = check_metadata(result, gate)
        assert verdicts[gate] is False and meta["decision"] == INSUFFICIENT, (gate, meta)
        assert meta["measured"] == "not measured: insufficient evidence"
        assert "positives" in meta["verdict"] and "needs >= 20" in meta["verdict"]
    assert not result.success
    assert not started(result) & downstream_of("trained_model"), "insufficient evidence blocks (the default)"


def test_a_model_that_flags_nobody_fails_the_operating_point_and_stops_the_factory(tmp_path, z3_root,
                                                                                   factory_resources):
    """Gated on the point estimate (as before issue 16), AUC and KS let this model through."""
    from z4_assets.resources import PolicyStore

    _register_loanapp(tmp_path, z3_root)
    point = tmp_path / "point.yaml"
    point.write_text("defaults:\n  performance: {gate_on: point}\n")
    factory_resources = {**factory_resources, "policy": PolicyStore(path=str(point))}
    result = run_factory(factory_resources, train=BEFORE)  # the whole factory: downstream is in the run
    verdicts = check_verdicts(result)
    assert verdicts["performance_auc"] and verdicts["performance_ks"], "AUC and KS alone let it through"
    assert {k for k, ok in verdicts.items() if not ok} == {"operating_point"}, verdicts
    meta = check_metadata(result, "operating_point")
    assert verdicts["operating_point"] is False and "flags nobody (selection rate 0)" in meta["verdict"]
    assert not started(result) & downstream_of("trained_model")

    again = run_factory(factory_resources, train=CONVERGED_TRAIN, assets=[trained_model])  # converged
    assert check_verdicts(again)["operating_point"], check_metadata(again, "operating_point")["verdict"]
    flagged = again.asset_materializations_for_node("trained_model")[0].metadata
    assert 0 < flagged["test_selection_rate"].value < 0.5


def test_the_1000_row_sample_flags_someone_and_its_auc_is_undecided(register, factory_resources, tmp_path):
    """The issue's small credit case with the default training and policy: the model flags someone
    (operating_point passes); its test AUC interval straddles 0.70, so performance is insufficient
    evidence and blocks, instead of a pass or a fail read off ~200 rows. Its dataset config pins no
    schedule (the bundled sample's does): the factory's defaults, which train to convergence."""
    import yaml

    from z4_assets_tests.conftest import SAMPLE_DATASET_CONFIG

    config = yaml.safe_load(SAMPLE_DATASET_CONFIG.read_text())
    config.pop("model")
    unpinned = tmp_path / "dataset.yaml"
    unpinned.write_text(yaml.safe_dump(config))
    register(taiwan_sample(1000), dataset_config=unpinned)
    defaults = {"epochs": None, "patience": 10, "class_weight": "auto"}  # TrainConfig's, over the fixtures' FAST_TRAIN
    result = run_factory(_packaged_policy(factory_resources), train=defaults, assets=BACKBONE)
    verdicts = check_verdicts(result)
    op = check_metadata(result, "operating_point")
    assert verdicts["operating_point"], op["verdict"]
    assert 0 < op["evidence"]["selection_rate"] < 1 and op["evidence"]["tpr"] > 0
    auc = check_metadata(result, "performance_auc")
    assert auc["decision"] == INSUFFICIENT and "holds values on both sides of >= 0.7" in auc["verdict"], auc
    lo, hi = auc["evidence"]["ci"]
    assert lo < 0.70 < hi and auc["evidence"]["estimate"] is not None
    assert not result.success
