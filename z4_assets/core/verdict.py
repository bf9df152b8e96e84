"""The verdict page of one factory run on one snapshot: what an auditor opens first.

It is made from the run's own evidence (each stage's `gates.json`, in stage-table order) and from how
each step ended (blocked, crashed, skipped), which the caller reads from the orchestrator. It says the
verdict; the gate that blocked, measured against its threshold, with offending examples; what was not
run and why; and links to the evidence, the MLflow run, the package and the registry version.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from z4_assets.core.files import atomic_write_text, read_json
from z4_assets.core.gates import verdict_word
from z4_assets.core.run_folder import RunFolder
from z4_assets.core.stages import PROMOTION, STAGES

SUCCEEDED = "succeeded"   # a step that ended normally (the others: blocked: / crashed: / skipped: ...)
LINK_NAMES = {"dagster_run": "Dagster run", "cleanup_run": "cleanup run", "failed_run": "failed run it cleans",
              "mlflow_run": "MLflow run", "registry_version": "registry version", "mlflow_runs": "MLflow runs table"}


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`[]<>|"})


def md_text(text: str) -> str:
    """TEXT from data (a gate summary, an offending value, an error) shown as literal text in Markdown:
    no link, image, HTML or table cell can be smuggled into the page through a value."""
    return str(text).replace("\n", " ").translate(_MD_SPECIAL)


def _short(v, width: int = 60) -> str:
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= width else text[:width - 3] + "..."


def offending_examples(g: dict, n: int = 3) -> list[str]:
    """Up to N offending examples from a failed gate's evidence (gates.json), as a reader wants them:
    contract violations with their values, named features, rule counts, clusters, ids."""
    from z4_assets.core.validation import short_check

    d = g.get("details") or {}
    out: list[str] = []
    for f in d.get("failures") or []:  # contract: column, what, first values
        out.append(f"{f.get('column')}: {short_check(str(f.get('check', '')))} "
                   f"({', '.join(map(str, f.get('examples') or [])) or '-'})")
    if isinstance(d.get("offending"), dict):  # legal basis: attribute -> declared basis
        out += [f"{k}: {_short(v)}" for k, v in d["offending"].items()]
    for key in ("flagged_features", "leaking_features", "unassessable"):
        items = d.get(key)
        out += [_short(x) for x in (items.items() if isinstance(items, dict) else items or [])]
    if isinstance(d.get("per_rule"), dict):
        out += [f"{rule}: {count} rows" for rule, count in d["per_rule"].items() if count]
    for c in d.get("clusters") or []:
        out.append(f"pattern {_short(c.get('pattern'))} ({c.get('flagged_rows', c.get('rows', '?'))} rows)")
    if d.get("offending_group") is not None:
        out.append(f"{d.get('attribute', '')} group {d['offending_group']}".strip())
    if isinstance(d.get("missing"), (dict, list)):
        out += [_short(m) for m in d["missing"]]
    if d.get("example_ids"):
        out.append("ids " + ", ".join(map(str, d["example_ids"][:n])))
    return out[:n]


def measured(g: dict) -> str:
    v = g.get("value")
    if v is None:
        return "not measured"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def gate_line(g: dict) -> str:
    """One gate as a decision: `performance_auc FAIL: measured 0.7856, must be >= 0.95 (...); e.g. ...`."""
    line = (f"{g['name']} {verdict_word(g)}: measured {measured(g)}, must be {g['comparison']} {g['threshold']}"
            f" ({g.get('summary', '')})")
    examples = offending_examples(g)
    return line + (f"; e.g. {'; '.join(examples)}" if examples else "")


@dataclass
class StageState:
    name: str
    asset: str
    gates: list = field(default_factory=list)   # this run's gates.json, [] when the stage wrote none
    ended: str = ""                             # the step's end when it did not succeed: blocked/crashed/skipped

    @property
    def failed(self) -> list:
        return [g for g in self.gates if not g["passed"]]


def read_stages(folder: RunFolder, steps: dict[str, str]) -> list[StageState]:
    """Each stage of the run: the gates it recorded, and STEPS[asset] (how its step ended when it did not succeed)."""
    out = []
    for stage in STAGES:
        path = folder.stage(stage.folder, create=False).gates if stage.gates else None
        gates = read_json(path) if path is not None and path.is_file() else []
        out.append(StageState(stage.name, stage.asset, gates, steps.get(stage.asset, "")))
    return out


def decision(stages: list[StageState], promoted: bool) -> tuple[str, str | None]:
    """('PROMOTED' | 'BLOCKED' | 'CRASHED' | 'INCOMPLETE', the asset that stopped the run)."""
    for s in stages:
        if s.failed:
            return "BLOCKED", s.asset
        if s.ended.startswith("crashed"):
            return "CRASHED", s.asset
    return ("PROMOTED", None) if promoted else ("INCOMPLETE", None)


def _why_not_run(s: StageState, stopper: str | None) -> str:
    if s.ended == SUCCEEDED:
        return "done (it has no gates of its own)"
    if s.ended.startswith("crashed"):
        return s.ended
    if stopper:
        return f"skipped: {stopper} did not pass in this run, so nothing downstream of it ran"
    return s.ended or "not run in this run"


def verdict_markdown(partition: str, run_id: str, stages: list[StageState], links: dict[str, str],
                     promotion: dict | None, evidence_dir: str) -> str:
    verdict, stopper = decision(stages, promotion is not None)
    head = {"PROMOTED": "PROMOTED: every gate passed; the signed package is registered",
            "BLOCKED": f"BLOCKED by {stopper}", "CRASHED": f"CRASHED in {stopper} (an error, not a gate)",
            "INCOMPLETE": "INCOMPLETE: the run stopped before promotion without a failed gate"}[verdict]
    lines = [f"# Verdict: {head}", "", f"Snapshot `{partition}`, Dagster run `{run_id}`.", ""]
    blocked = next((s for s in stages if s.failed), None)
    if blocked is not None:
        lines += [f"## The gate that blocked ({blocked.name}, asset `{blocked.asset}`)", "",
                  "| gate | verdict | measured | rule | threshold |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {g['name']} | {verdict_word(g)} | {md_text(measured(g))} | measured {md_text(g['comparison'])} "
                  f"threshold | {md_text(g['threshold'])} |" for g in blocked.failed]
        for g in blocked.failed:
            lines += ["", f"- **{g['name']}**: {md_text(g.get('summary', ''))}"]
            lines += [f"  - offending: {md_text(e)}" for e in offending_examples(g, 5)]
        lines.append("")
    crashed = next((s for s in stages if s.ended.startswith("crashed")), None)
    if crashed is not None and blocked is None:
        lines += [f"## The error ({crashed.name}, asset `{crashed.asset}`)", "", md_text(crashed.ended), ""]
    lines += ["## Every stage", "", "| stage | asset | result | gates (pass / fail / insufficient) |",
              "| --- | --- | --- | --- |"]
    seen_stop = False
    for s in stages:
        if s.gates:
            counts = [sum(verdict_word(g) == w for g in s.gates) for w in ("pass", "FAIL")]
            insufficient = len(s.gates) - sum(counts)
            result = "BLOCKED" if s.failed else "passed"
            lines.append(f"| {s.name} | {s.asset} | {result} | {counts[0]} / {counts[1]} / {insufficient} |")
        else:
            lines.append(f"| {s.name} | {s.asset} | {md_text(_why_not_run(s, stopper if seen_stop else None))} | - |")
        seen_stop = seen_stop or s.asset == stopper
    lines += ["", "## Links", "", f"- evidence: `{evidence_dir}` (each stage's `gates.json`)"]
    if promotion is not None:
        lines.append(f"- package: `{promotion.get('tarball', '')}` sha256 `{promotion['package_sha256']}`, "
                     f"registered as `{promotion['model']}` version {promotion['version']} "
                     f"(@{promotion['alias']})")
    lines += [f"- {LINK_NAMES.get(k, k)}: [{v}]({v})" for k, v in links.items() if v]
    return "\n".join(lines) + "\n"


def write_verdict(folder: RunFolder, partition: str, steps: dict[str, str], links: dict[str, str]):
    """The run's verdict page, written atomically to postrun/verdict.md: (path, markdown, verdict, stopper)."""
    stages = read_stages(folder, steps)
    promo_file = folder.stage(PROMOTION.folder, create=False).promotion
    promotion = read_json(promo_file) if promo_file.is_file() else None
    if promotion is not None:
        promotion["tarball"] = str(folder.package_tarball)
    text = verdict_markdown(partition, folder.run_id, stages, links, promotion, str(folder.run_dir))
    path = atomic_write_text(folder.stage("postrun").verdict, text)
    verdict, stopper = decision(stages, promotion is not None)
    return path, text, verdict, stopper
