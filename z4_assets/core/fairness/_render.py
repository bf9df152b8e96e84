"""The fairness report as Markdown tables, for the asset's metadata and the model card."""

from __future__ import annotations

from z4_assets.core.fairness._disparity import DISPARITIES

COLUMNS = ("auc", "ks", "selection_rate", "tpr", "fpr", "precision")


def fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def fmt_ci(ci) -> str:
    if not ci or ci[0] is None:
        return ""
    return f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def group_table(assessed: dict) -> list[str]:
    lines = ["| group | rows | positives | status | AUC | KS | selection rate | TPR | FPR | precision |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label in assessed.get("order", assessed["groups"]):
        e = assessed["groups"][label]
        if e["status"] != "ok":
            lines.append(f"| {label} | {e['count']} | {e['positives']} | insufficient | "
                         + " | ".join("-" for _ in COLUMNS) + " |")
            continue
        cells = [fmt(e[m]) + fmt_ci(e.get(f"{m}_ci")) for m in COLUMNS]
        lines.append(f"| {label} | {e['count']} | {e['positives']} | ok | " + " | ".join(cells) + " |")
    return lines


def disparity_table(report: dict, section: str = "attributes") -> list[str]:
    lines = ["| grouping | " + " | ".join(DISPARITIES) + " |",
             "| --- | " + " | ".join("---" for _ in DISPARITIES) + " |"]
    for name, a in report[section].items():
        if not a["assessable"]:
            lines.append(f"| {name} | " + " | ".join("not assessable" for _ in DISPARITIES) + " |")
            continue
        cells = [fmt(a["disparities"][d]["value"]) + fmt_ci(a["disparities"][d]["ci"]) for d in DISPARITIES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def summary_markdown(report: dict) -> str:
    sel = report["selection"]
    conf = report["bootstrap"]["confidence"]
    lines = [f"Test rows: {report['test_rows']}; selected = score >= {sel['threshold']:.4g} "
             f"(rule {sel['rule']} {sel['value']}); favourable outcome: {sel['favourable_outcome']}"
             f"{' (' + sel['favourable_outcome_source'] + ')' if sel.get('favourable_outcome_source') else ''}; "
             f"{conf:.0%} intervals from {report['bootstrap']['resamples']} bootstrap resamples "
             f"(seed {report['bootstrap']['seed']}). Gated attributes: "
             f"{', '.join(report['gated_attributes']) or 'none'}.", "",
             "Disparities per attribute:", "", *disparity_table(report)]
    if report["intersections"]:
        lines += ["", "Disparities per intersection (reported; cells below "
                  f"{report['min_group_count']} rows are insufficient):", "",
                  *disparity_table(report, "intersections")]
    return "\n".join(lines) + "\n"
