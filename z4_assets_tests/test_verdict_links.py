"""The verdict page and its links under attack: values from the data cannot inject Markdown, a base URL
with credentials never reaches a link, a partition key is quoted, an unexpected folder state is read as is."""

from __future__ import annotations

import json
import re

from z4_assets.core.links import dagster_asset_url, dagster_run_url, mlflow_run_url, mlflow_ui_base, registry_version_url
from z4_assets.core.run_folder import RunFolder
from z4_assets.core.verdict import write_verdict


def _gates(folder: RunFolder, stage: str, gates: list[dict]) -> None:
    path = folder.stage(stage).gates
    path.write_text(json.dumps(gates))


def _gate(name, passed, value, threshold=0.01, comparison="<=", summary="", details=None):
    return {"name": name, "passed": passed, "value": value, "threshold": threshold, "comparison": comparison,
            "summary": summary, "details": details or {}, "sufficient": True, "verdict": "PASS" if passed else "FAIL"}


def test_a_value_from_the_data_cannot_inject_a_link_html_or_a_table_cell(tmp_path):
    folder = RunFolder(tmp_path, "run-1")
    evil = "[click](javascript:alert(1)) <img src=x onerror=alert(1)> | forged | cell"
    _gates(folder, "snapshot", [_gate("contract", False, 3, 0, "==", f"violations in {evil}",
                                      {"failures": [{"column": evil, "check": "isin", "examples": [evil]}]})])
    _, page, verdict, stopper = write_verdict(folder, "d@s", {"hygiene_report": "crashed: " + evil}, {})
    assert (verdict, stopper) == ("BLOCKED", "z3_snapshot")
    assert not re.search(r"(?<!\\)\]\(javascript", page) and not re.search(r"(?<!\\)<img", page)
    assert "\\[click\\]" in page
    table = [line for line in page.splitlines() if line.startswith("| contract |")]
    assert len(table) == 1 and table[0].count("|") - table[0].count("\\|") == 6  # 5 cells, none forged


def test_links_never_carry_credentials_and_quote_the_partition():
    # fake credentials, to be dropped
    assert mlflow_ui_base("", "http://alice:s3cret@mlflow.internal:5000/") == "http://mlflow.internal:5000"  # pragma: allowlist secret
    assert mlflow_ui_base("https://bob:pw@ui.example/mlflow/", "sqlite:///x.db") == "https://ui.example/mlflow"  # pragma: allowlist secret
    assert mlflow_ui_base("", "sqlite:////tmp/mlflow.db") == "http://127.0.0.1:5000"
    assert dagster_run_url("http://u:p@dagster:3000/", "abc") == "http://dagster:3000/runs/abc"  # pragma: allowlist secret
    url = dagster_asset_url("http://d", "verdict", "ds@2026 x/../y?z#w")
    assert url == "http://d/assets/verdict?view=partitions&partition=ds%402026%20x%2F..%2Fy%3Fz%23w"
    assert mlflow_run_url("http://m/", "1", "r/../x") == "http://m/#/experiments/1/runs/r%2F..%2Fx"
    assert registry_version_url("http://m", "z4-a b", 3) == "http://m/#/models/z4-a%20b/versions/3"


def test_a_run_that_wrote_no_gates_reads_incomplete_not_promoted(tmp_path):
    folder = RunFolder(tmp_path, "run-2")
    _, page, verdict, _ = write_verdict(folder, "d@s", {}, {})
    assert verdict == "INCOMPLETE" and "PROMOTED" not in page
    assert "| snapshot | z3_snapshot | not run in this run | - |" in page
    (folder.postrun / "verdict.md").unlink()
    target = tmp_path / "elsewhere.md"
    target.write_text("keep")
    (folder.postrun / "verdict.md").symlink_to(target)  # a planted symlink is replaced, never written through
    write_verdict(folder, "d@s", {}, {})
    assert target.read_text() == "keep" and not (folder.postrun / "verdict.md").is_symlink()
