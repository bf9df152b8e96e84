"""The audit in docs/gates.md stays honest: every gate of the stage table has a row naming an existing test
function that fails it in a real run, and no row names a gate or a test that does not exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from z4_assets.core.stages import all_gate_names

TESTS = Path(__file__).resolve().parent
DOC = TESTS.parent / "docs" / "gates.md"
HEADING = "## Every gate fails in a real run (audit)"
ROW = re.compile(r"^\| `(?P<gate>[a-z_]+)` \| `(?P<file>[\w/]+\.py)::(?P<test>test_\w+)` \|")


def audit_rows() -> list[dict]:
    text = DOC.read_text()
    assert HEADING in text, f"{DOC}: no section {HEADING!r}"
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    rows = []
    for line in table:
        m = ROW.match(line)
        assert m, f"{DOC}: an audit row must read | `gate` | `file.py::test_name` | ...: {line}"
        rows.append(m.groupdict())
    return rows


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_gate_of_the_stage_table_has_one_audit_row():
    gates = [r["gate"] for r in audit_rows()]
    assert len(gates) == len(set(gates)), sorted(g for g in gates if gates.count(g) > 1)
    assert set(gates) == set(all_gate_names()), {"missing": sorted(set(all_gate_names()) - set(gates)),
                                                   "unknown": sorted(set(gates) - set(all_gate_names()))}


def test_every_audit_row_names_an_existing_test_that_mentions_its_gate():
    for row in audit_rows():
        path = TESTS / row["file"]
        assert path.is_file(), f"{row['gate']}: no test file {row['file']}"
        assert row["test"] in _test_functions(path), f"{row['gate']}: {row['file']} has no {row['test']}"
        assert re.search(rf"[\"']{row['gate']}[\"']", path.read_text()), \
            f"{row['gate']}: {row['file']} never names the gate it is said to fail"


def test_the_audit_catches_a_missing_row_and_a_renamed_test(tmp_path, monkeypatch):
    """The checks above could fail: a table without one gate's row, or naming a test that is gone."""
    import z4_assets_tests.test_gate_audit as audit

    text = DOC.read_text()
    first = next(line for line in text.splitlines() if ROW.match(line))
    doc = tmp_path / "gates.md"
    doc.write_text(text.replace(first + "\n", ""))
    monkeypatch.setattr(audit, "DOC", doc)
    gates = {r["gate"] for r in audit.audit_rows()}
    assert set(all_gate_names()) - gates == {ROW.match(first)["gate"]}

    test = ROW.match(first)["test"]
    doc.write_text(text.replace(f"::{test}`", f"::{test}_renamed`", 1))
    row = next(r for r in audit.audit_rows() if r["gate"] == ROW.match(first)["gate"])
    assert row["test"] not in _test_functions(TESTS / row["file"])
