"""Small records passed between stages: where a stage left its evidence and whether it passed."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StageEvidence:
    stage: str
    path: str
    passed: bool
    files: dict = field(default_factory=dict)
