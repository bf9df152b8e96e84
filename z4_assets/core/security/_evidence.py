"""The security stage's evidence files, each written atomically into the run's security folder."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from z4_assets.core.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from z4_assets.core.security._evaluate import SecurityResult, decision_text

ROLES = ("adv_eval", "privacy_eval", "output_integrity", "robustness_curve", "security_decision",
         "suspicious_rows", "gates")


def write_evidence(files, outcome: SecurityResult, context: dict, caption: str = "") -> dict[str, Path]:
    """Every security file into the security folder (FILES: core/run_folder.py names them).
    CONTEXT (snapshot label, model digest, ...) is copied into every JSON report; CAPTION (core/plots.caption)
    is drawn on the robustness curve."""
    from z4_assets.core.security._evasion import plot_curve

    paths = {k: getattr(files, k) for k in ROLES}
    atomic_write_json(paths["adv_eval"], {**context, **outcome.adversarial, "seconds": outcome.seconds})
    atomic_write_json(paths["privacy_eval"], {**context, **outcome.privacy})
    atomic_write_json(paths["output_integrity"], {**context, **outcome.integrity})
    plot_curve({**outcome.adversarial["evasion"], "caption": caption}, paths["robustness_curve"])
    flagged = outcome.screen.flagged
    rows = pd.DataFrame({"id": outcome.row_ids[flagged], "cluster": outcome.screen.cluster_of[flagged],
                         "split": outcome.split[flagged]})
    buf = io.StringIO()
    rows.to_csv(buf, index=False)
    atomic_write_bytes(paths["suspicious_rows"], buf.getvalue().encode())
    atomic_write_json(paths["gates"], [g.as_dict() for g in outcome.gates])
    atomic_write_text(paths["security_decision"], decision_text(outcome))
    return paths
