"""The model card's evidence-heavy sections: hygiene, performance, fairness, security."""

from __future__ import annotations

import json

from z4_assets.core.fairness import disparity_table, group_table
from z4_assets.core.gates import _fmt, verdict_word
from z4_assets.core.governance._escape import code, text as inert


PERF_KEYS = ("auc", "ks", "accuracy", "log_loss", "brier", "positive_rate", "rows")


def gate_rows(gates: list[dict]) -> list[str]:
    """The same row format as gates.render_markdown: measured next to threshold."""
    lines = ["| gate | verdict | measured | threshold |", "| --- | --- | --- | --- |"]
    for g in gates:
        word = verdict_word(g)
        verdict = word if g["passed"] else f"**{word}**"
        # a measured value or threshold may be user text (a purpose, the contract's allowed purposes)
        lines.append(f"| {g['name']} | {verdict} | {cell(g['value'])} | {g['comparison']} {cell(g['threshold'])} |")
    return lines


def cell(x) -> str:
    """A figure as the gate tables show it; text (a purpose, a list of allowed ones) made inert."""
    return inert(x) if isinstance(x, str) else _fmt(x)


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


def inert_groups(rep: dict) -> dict:
    """The fairness report with the names it takes from the data (attributes, group labels, offending
    groups) made inert; its own keys and figures unchanged."""
    def section(items: dict) -> dict:
        out = {}
        for name, a in items.items():
            a = dict(a)
            if "groups" in a:
                a["groups"] = {inert(g): e for g, e in a["groups"].items()}
            if "order" in a:
                a["order"] = [inert(g) for g in a["order"]]
            if "disparities" in a:
                a["disparities"] = {d: ({**v, "offending_group": inert(v["offending_group"])}
                                        if isinstance(v, dict) and v.get("offending_group") is not None else v)
                                    for d, v in a["disparities"].items()}
            out[inert(name)] = a
        return out

    return {**rep, "attributes": section(rep["attributes"]), "intersections": section(rep["intersections"]),
            "gated_attributes": [inert(a) for a in rep["gated_attributes"]]}


def fairness(ev) -> list[str]:
    rep = inert_groups(ev.get("fairness_report"))
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
    for raw, (name, a) in zip(ev.get("fairness_report")["attributes"], rep["attributes"].items()):
        lines += ["", f"**{name}** per group (plot: {code(f'fairness_{raw}.png')}):", "", *group_table(a)]
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
        rows.append((prefix, cell(obj) if isinstance(obj, str) else _fmt(obj) if isinstance(obj, float) else str(obj)))
    else:  # the factory's own report keys; any text value is quoted inert
        rows.append((prefix, inert(json.dumps(obj, default=str)[:200])))
    return rows


def security(ev) -> list[str]:
    lines = []
    decision = ev.get("security_decision")
    if decision is not None:
        text = "\n".join(decision.strip().splitlines()[:40]).replace("`", "'")  # nothing closes the fence
        lines += ["Security decision (`security_decision.txt`):", "", "```", text, "```", ""]
    for name, title in (("adversarial_eval", "Adversarial evaluation (`adv_eval.json`)"),
                        ("privacy_eval", "Privacy evaluation (`privacy_eval.json`)")):
        if ev.get(name) is not None:
            lines += [f"{title}:", "", "| key | value |", "| --- | --- |",
                      *(f"| {k} | {v} |" for k, v in _flatten(ev.get(name))), ""]
    return lines
