"""Where each gate's and each failure kind's runbook entry lives (docs/runbooks/).

Every gate of the stage table has an entry in its stage's runbook file, under a heading that is the
gate's name (so the anchor is the name); the failure kinds that are not gates have theirs in
failures.md. Check metadata, the model card and incident records link here.
"""

from __future__ import annotations

from pathlib import Path

from z4_assets.core.stages import STAGES

DOCS = "docs/runbooks"
ROOT = Path(__file__).resolve().parents[2]
# A run can end without a failed gate: these are the other ways, each with its entry.
FAILURE_KINDS = ("crash", "time-out", "revocation-failure", "verification-failure")
_FILE = {"governance": "release", "record": "release", "promotion": "release", "cleanup": "release"}
_BY_GATE = {g: _FILE.get(s.name, s.name) for s in STAGES for g in s.gate_names}


def gate_runbook(gate: str) -> str:
    """docs/runbooks/<stage file>.md#<gate>, relative to the project root."""
    return f"{DOCS}/{_BY_GATE[gate]}.md#{gate}"


def failure_runbook(kind: str) -> str:
    if kind not in FAILURE_KINDS:
        raise KeyError(kind)
    return f"{DOCS}/failures.md#{kind}"
