"""A gate's verdict: the measured value next to its threshold, with the evidence behind it."""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass, field

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}


@dataclass
class Gate:
    name: str
    passed: bool
    value: float | int | str
    threshold: float | int | str
    comparison: str
    summary: str
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


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
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def render_markdown(title: str, gates: list[Gate], intro: str = "") -> str:
    lines = [f"# {title}", ""]
    if intro:
        lines += [intro, ""]
    lines += ["| gate | verdict | measured | threshold |", "| --- | --- | --- | --- |"]
    for g in gates:
        verdict = "pass" if g.passed else "**FAIL**"
        lines.append(f"| {g.name} | {verdict} | {_fmt(g.value)} | {g.comparison} {_fmt(g.threshold)} |")
    lines.append("")
    for g in gates:
        lines.append(f"- **{g.name}**: {g.summary}")
    return "\n".join(lines) + "\n"
