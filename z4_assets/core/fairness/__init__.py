"""The fairness stage: how the candidate behaves for every protected group, per-group metrics with
bootstrap intervals, gated on the gaps between groups."""

from __future__ import annotations

import re

from z4_assets.core.fairness._gates import GATES as DISPARITY_GATES
from z4_assets.core.fairness._groups import attribute_labels
from z4_assets.core.fairness._render import disparity_table, group_table
from z4_assets.core.files import atomic_write_json, atomic_write_text
from z4_assets.core.outcome import HygieneOutcome, ModelOutcome, Plot, SnapshotOutcome, StageOutcome, accept
from z4_assets.core.stage_run import StageRun
from z4_assets.core.stages import FAIRNESS

__all__ = ["DISPARITY_GATES", "attribute_labels", "disparity_table", "fairness_of_scores", "favourable_rules",
           "group_table", "run_fairness_report"]


def _metric_key(label: str) -> str:
    """'SEX=1 & AGE=[21,25)' -> 'SEX_1__AGE_21-25': MLflow metric names allow [\\w./ -] only."""
    return re.sub(r"_+", "_", re.sub(r"[^\w.\- ]", "_", label.replace(",", "-").replace(" & ", "__"))).strip("_")


def favourable_rules(snapshot, contract, rules):
    """(RULES with the snapshot's favourable outcome in force, where that outcome came from); RULES:
    the policy's fairness section."""
    from z4_assets.core.fairness._direction import favourable_outcome

    favourable, source = favourable_outcome(snapshot, contract, rules.favourable_outcome)
    return rules.model_copy(update={"favourable_outcome": favourable}), source


def fairness_of_scores(test, contract, y, scores, rules, reference) -> dict:
    """The fairness stage's report (groups, disparities with intervals, gate verdicts) of SCORES on
    the TEST rows, without writing anything: the challenger table's fairness columns."""
    from z4_assets.core.fairness._report import build_report

    return build_report(test, contract, y, scores, rules, reference=reference).report


def run_fairness_report(snapshot: SnapshotOutcome, hygiene: HygieneOutcome, model: ModelOutcome,
                        run: StageRun) -> StageOutcome:
    import numpy as np

    from z4_assets.core.fairness._plots import plot_attribute
    from z4_assets.core.fairness._render import summary_markdown
    from z4_assets.core.plots import caption
    from z4_assets.core.fairness._report import build_report
    from z4_assets.core.split import TEST, load_split
    from z4_assets.core.training import score_rows

    consumed = accept(FAIRNESS.name, run.partition, {"snapshot": snapshot, "hygiene": hygiene, "training": model})
    contract = run.contract
    rules, source = favourable_rules(run.snapshot, contract, run.policy.fairness)
    df = run.rows()
    split = load_split(hygiene.split_path, len(df), consumed.split)
    test = df[split == TEST]
    y = (test[contract.target.column] == contract.target.positive).to_numpy(dtype=np.int64)
    result = build_report(test, contract, y, score_rows(model, test), rules, reference=df)
    report = {"snapshot": run.partition, "dataset_hash": consumed.snapshot,
              "model_state_dict_sha256": consumed.model, **result.report}
    report["selection"]["favourable_outcome_source"] = source

    files = run.folder.stage(FAIRNESS.folder)
    atomic_write_json(files.report, report)
    atomic_write_json(files.gates, report["gates"])
    summary = summary_markdown(report)
    atomic_write_text(files.summary, f"# Fairness report: {run.partition}\n\n{summary}")
    label = caption(run.partition, run.run_id)
    plots = {name: plot_attribute(name, assessed, files, report["bootstrap"]["confidence"], rules,
                                  name in report["gated_attributes"], label)
             for name, assessed in report["attributes"].items()}
    subgroup = {f"subgroup.{_metric_key(label)}.{m}": e[m]
                for a in report["attributes"].values() for label, e in a["groups"].items()
                if e.get("status") == "ok"
                for m in ("count", "auc", "ks", "selection_rate", "tpr", "fpr", "precision") if e.get(m) is not None}
    disparities = {f"fairness.{attr}.{d}": v["value"] for attr, a in report["attributes"].items()
                   for d, v in a["disparities"].items() if v["value"] is not None}
    return StageOutcome(
        stage=FAIRNESS.name, partition=run.partition, run_id=run.run_id, gates=tuple(result.gates),
        files={"report": str(files.report), "gates": str(files.gates), "summary": str(files.summary),
               **{f"plot_{k}": str(v) for k, v in plots.items()}},
        plots={f"plot_{k}": Plot(title=f"Fairness by {k}", path=str(v)) for k, v in plots.items()},
        metrics={**subgroup, **disparities}, tags={"fairness.passed": str(report["passed"]).lower()},
        artifacts={"reports/fairness": str(files.dir)},
        facts={"summary": summary, "test_rows": report["test_rows"],
               "selection_threshold": report["selection"]["threshold"], "seconds": report["seconds"]},
        consumed=consumed)
