"""A gate's verdict: the measured value next to its threshold, with the evidence behind it.

Three verdicts: PASS, FAIL, and INSUFFICIENT_EVIDENCE when the sample was too small to decide. An
insufficient gate reports no measured value (it measured nothing it could stand behind), says why,
and blocks or not as the policy says: `passed` is always "lets the model through".
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass, field

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}


PASS, FAIL, INSUFFICIENT = "PASS", "FAIL", "INSUFFICIENT_EVIDENCE"


@dataclass
class Gate:
    name: str
    passed: bool                       # lets the model through (an insufficient gate may, by policy)
    value: float | int | str | None    # None: not measured (insufficient evidence)
    threshold: float | int | str
    comparison: str
    summary: str
    details: dict = field(default_factory=dict)
    sufficient: bool = True            # False: too little evidence to decide

    @property
    def verdict(self) -> str:
        if not self.sufficient:
            return INSUFFICIENT
        return PASS if self.passed else FAIL

    def as_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


@dataclass(frozen=True)
class GateSpec:
    """A gate as the stage table declares it: its name (written only there) and what it checks."""

    name: str
    description: str

    def compare(self, value, comparison: str, threshold, summary: str, details: dict | None = None) -> Gate:
        return compare(self.name, value, comparison, threshold, summary, details)

    def verdict(self, passed: bool, value, comparison: str, threshold, summary: str,
                details: dict | None = None) -> Gate:
        """A gate whose pass/fail is decided by the caller (a membership test, an unreadable input)."""
        return Gate(self.name, bool(passed), value, threshold, comparison, summary, details or {})

    def insufficient(self, reason: str, comparison: str, threshold, blocks: bool,
                     details: dict | None = None) -> Gate:
        """Too little evidence to decide (REASON says what was missing); BLOCKS: what the policy says."""
        effect = "blocks promotion" if blocks else "does not block (policy)"
        return Gate(self.name, not blocks, None, threshold, comparison,
                    f"INSUFFICIENT EVIDENCE ({effect}): {reason}", details or {}, sufficient=False)


def compare(name: str, value: float, comparison: str, threshold: float, summary: str,
            details: dict | None = None) -> Gate:
    """Pass when `value <comparison> threshold`; NaN never passes."""
    value = value.item() if hasattr(value, "item") else value  # numpy scalars -> Python
    threshold = threshold.item() if hasattr(threshold, "item") else threshold
    ok = not (isinstance(value, float) and math.isnan(value)) and _OPS[comparison](value, threshold)
    verdict = "ok" if ok else "FAILED"
    text = f"{verdict}: {summary} = {_fmt(value)} (must be {comparison} {_fmt(threshold)})"
    return Gate(name, bool(ok), value, threshold, comparison, text, details or {})


def _fmt(x: object) -> str:
    if x is None:
        return "not measured"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def verdict_word(g) -> str:
    """How a gate (a Gate or its as_dict) reads in a table: pass, FAIL, insufficient (blocks or not)."""
    verdict = g.verdict if isinstance(g, Gate) else g.get("verdict") or (PASS if g["passed"] else FAIL)
    passed = g.passed if isinstance(g, Gate) else g["passed"]
    if verdict == INSUFFICIENT:
        return "insufficient evidence" + ("" if passed else ", blocks")
    return "pass" if passed else "FAIL"


def render_markdown(title: str, gates: list[Gate], intro: str = "") -> str:
    lines = [f"# {title}", ""]
    if intro:
        lines += [intro, ""]
    lines += ["| gate | verdict | measured | threshold |", "| --- | --- | --- | --- |"]
    for g in gates:
        word = verdict_word(g)
        verdict = f"**{word}**" if not g.passed else word
        lines.append(f"| {g.name} | {verdict} | {_fmt(g.value)} | {g.comparison} {_fmt(g.threshold)} |")
    lines.append("")
    for g in gates:
        lines.append(f"- **{g.name}**: {g.summary}")
    return "\n".join(lines) + "\n"
