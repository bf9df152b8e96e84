"""The model card's evidence-heavy sections: hygiene, performance, fairness, security."""

from __future__ import annotations

import json

from z4_assets.core.fairness import disparity_table, group_table
from z4_assets.core.gates import _fmt, verdict_word

PERF_KEYS = ("auc", "ks", "accuracy", "log_loss", "brier", "positive_rate", "rows")


def gate_rows(gates: list[dict]) -> list[str]:
    """The same row format as gates.render_markdown: measured next to threshold."""
    lines = ["| gate | verdict | measured | threshold |", "| --- | --- | --- | --- |"]
    for g in gates:
        word = verdict_word(g)
        verdict = word if g["passed"] else f"**{word}**"
        lines.append(f"| {g['name']} | {verdict} | {_fmt(g['value'])} | {g['comparison']} {_fmt(g['threshold'])} |")
    return lines


def metric(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:.4f}"


def hygiene(ev) -> list[str]:
    report = ev.get("hygiene_report")
    return ["Snapshot gates (integrity, contract, legal basis):", "", *gate_rows(ev.get("snapshot_gates")), "",
            f"Hygiene gates on {report['rows']} rows (positive rate {metric(report['positive_rate'])}):", "",
            *gate_rows(ev.get("hygiene_gates"))]


def performance(ev) -> list[str]:
    metrics = ev.get("model_metrics")
    lines = ["| split | " + " | ".join(PERF_KEYS) + " |", "| --- | " + " | ".join("---" for _ in PERF_KEYS) + " |"]
    for split, m in metrics.items():
        lines.append(f"| {split} | " + " | ".join(metric(m[k]) for k in PERF_KEYS) + " |")
    return ["Metrics per split (accuracy at score >= 0.5):", "", *lines, "",
            "Performance gates (test split):", "", *gate_rows(ev.get("model_gates"))]


def fairness(ev) -> list[str]:
    rep = ev.get("fairness_report")
    sel, boot = rep["selection"], rep["bootstrap"]
    lines = [f"Test rows: {rep['test_rows']}. Selected (predicted positive) = score >= {_fmt(sel['threshold'])} "
             f"(policy rule `{sel['rule']}` {sel['value']}); favourable outcome for the parity ratio: "
             f"`{sel['favourable_outcome']}`"
             f"{' (' + sel['favourable_outcome_source'] + ')' if sel.get('favourable_outcome_source') else ''}. Intervals: {boot['confidence']:.0%} percentile, "
             f"{boot['resamples']} Poisson-bootstrap resamples, seed {boot['seed']}. Groups with fewer than "
             f"{rep['min_group_count']} rows or {rep['min_class_count']} of either class are reported as "
             f"insufficient and left out of the disparities. Gated attributes: "
             f"{', '.join(rep['gated_attributes']) or 'none'}.", "",
             "Fairness gates:", "", *gate_rows(rep["gates"]), "",
             "Disparities per attribute (point estimate [interval]):", "", *disparity_table(rep)]
    for name, a in rep["attributes"].items():
        lines += ["", f"**{name}** per group (plot: `fairness_{name}.png`):", "", *group_table(a)]
    if rep["intersections"]:
        lines += ["", "Intersections (reported, not gated unless the policy says so):", "",
                  *disparity_table(rep, "intersections"), ""]
        for name, a in rep["intersections"].items():
            small = [g for g, e in a["groups"].items() if e["status"] != "ok"]
            lines.append(f"- {name}: {len(a['groups'])} cells, {len(small)} insufficient"
                         + (f" ({'; '.join(small)})" if small else ""))
    return lines


def _flatten(obj, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    rows = []
    if isinstance(obj, dict) and depth < 3:
        for k, v in obj.items():
            rows += _flatten(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
    elif isinstance(obj, (int, float, str, bool)) or obj is None:
        rows.append((prefix, _fmt(obj) if isinstance(obj, float) else str(obj)))
    else:
        rows.append((prefix, json.dumps(obj, default=str)[:200]))
    return rows


def security(ev) -> list[str]:
    lines = []
    decision = ev.get("security_decision")
    if decision is not None:
        text = "\n".join(decision.strip().splitlines()[:40])
        lines += ["Security decision (`security_decision.txt`):", "", "```", text, "```", ""]
    for name, title in (("adversarial_eval", "Adversarial evaluation (`adv_eval.json`)"),
                        ("privacy_eval", "Privacy evaluation (`privacy_eval.json`)")):
        if ev.get(name) is not None:
            lines += [f"{title}:", "", "| key | value |", "| --- | --- |",
                      *(f"| {k} | {v} |" for k, v in _flatten(ev.get(name))), ""]
    return lines
