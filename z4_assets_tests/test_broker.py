"""The access broker alone: purposes, keyed pseudonyms, the append-only access log, and no read around it."""

from __future__ import annotations

import ast
import json
import multiprocessing
import re
from pathlib import Path

import pandas as pd
import pytest

from z4_assets.core import broker
from z4_assets.core.contract import Contract, load_contract
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_bytes
from z4_assets.core.hygiene._checks import run_hygiene
from z4_assets.core.policy import load_policy
from z4_assets_tests.conftest import SAMPLE_CONTRACT

PKG = Path(__file__).resolve().parents[1] / "z4_assets"
KEY = b"k" * 32
WHO = {"user": "analyst", "user_source": "env:USER", "service": None}


@pytest.fixture
def snap(sample_df, register):
    import dataclasses

    ref = register(sample_df.head(3000))
    return dataclasses.replace(ref, purpose="credit_risk_scoring"), load_contract(ref.contract_path)[0]


def _read(ref, contract, log, **kw):
    args = {"purpose": ref.purpose, "identity": WHO, "run_id": "run-1", "key": KEY, "log_path": log, **kw}
    return broker.read_snapshot(ref, contract, **args)


def _lines(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines()]


def test_pseudonyms_are_keyed_stable_and_dtype_blind():
    ids = pd.Series([1, 2, 1, None], dtype="Int64")
    a, b = broker.pseudonymise(ids, KEY), broker.pseudonymise(ids, KEY)
    assert a.tolist() == b.tolist() and a[0] == a[2] != a[1] and a[3] is None
    assert re.fullmatch(r"[0-9a-f]{32}", a[0])
    assert broker.pseudonymise(ids, b"x" * 32)[0] != a[0]  # another key, other pseudonyms
    assert broker.pseudonym(1.0, KEY) == broker.pseudonym(1, KEY) == a[0]  # CSV float ids agree
    assert broker.pseudonym("1", KEY) == a[0] and broker.pseudonym("TW-A1", KEY) != a[0]
    long_key = b"L" * 100  # longer than SHA-256's block: hashed first, as RFC 2104 says
    many = pd.Series(["TW-A123456789", "x", "é", "TW-A123456789"])
    assert broker.pseudonymise(many, long_key).tolist() == [broker.pseudonym(v, long_key) for v in many]


def test_a_read_returns_pseudonyms_and_logs_one_line(snap, sample_df, tmp_path):
    ref, contract = snap
    log = tmp_path / "access_log.jsonl"
    df = _read(ref, contract, log, reader="hygiene_report")
    raw = sample_df.head(3000)["ID"]
    assert not set(raw.astype(str)) & set(df["ID"]) and df["ID"].nunique() == raw.nunique()
    assert df["ID"].tolist() == [broker.pseudonym(v, KEY) for v in raw]
    pd.testing.assert_frame_equal(df.drop(columns="ID"), sample_df.head(3000).drop(columns="ID"),
                                  check_dtype=False)
    (line,) = _lines(log)
    assert line["decision"] == "granted" and line["pseudonymised"] == ["ID"] and line["raw"] is False
    assert (line["dataset"], line["snapshot"], line["purpose"], line["run_id"], line["user"]) == (
        ref.dataset_id, ref.snapshot_id, "credit_risk_scoring", "run-1", "analyst")
    assert line["columns"] == list(df.columns) and line["rows"] == 3000
    assert line["ts"].endswith("Z") and line["data_sha256"] == ref.manifest["hash"]
    sub = _read(ref, contract, log, columns=["ID", "AGE"])
    assert list(sub.columns) == ["ID", "AGE"] and sub["ID"].equals(df["ID"])  # joinable across reads
    assert _lines(log)[1]["columns"] == ["ID", "AGE"]
    assert KEY.decode() not in log.read_text()


def test_the_intake_read_is_raw_and_says_so(snap, sample_df, tmp_path):
    ref, contract = snap
    log = tmp_path / "log.jsonl"
    df = _read(ref, contract, log, key=None, raw_for_intake=True)
    assert df["ID"].tolist() == sample_df.head(3000)["ID"].tolist()
    assert _lines(log)[0]["raw"] is True and _lines(log)[0]["pseudonymised"] == []


def test_a_purpose_the_contract_does_not_allow_is_denied_and_logged(snap, tmp_path):
    ref, contract = snap
    log = tmp_path / "log.jsonl"
    with pytest.raises(broker.PurposeDenied, match="'marketing' denied.*allows only credit_risk_scoring"):
        _read(ref, contract, log, purpose="marketing")
    bare = Contract.model_validate({**contract.model_dump(exclude_none=True), "purposes": []})
    with pytest.raises(broker.PurposeDenied, match="declares no allowed purposes \\(deny by default"):
        _read(ref, bare, log)
    lines = _lines(log)
    assert [x["decision"] for x in lines] == ["denied", "denied"] and "rows" not in lines[0]
    assert lines[0]["purpose"] == "marketing"


def test_identifiers_without_a_key_fail_clearly_and_no_identifiers_need_none(snap, tmp_path):
    ref, contract = snap
    with pytest.raises(Z4Error, match="no pseudonymisation key configured: set Z4_PSEUDONYM_KEY"):
        _read(ref, contract, tmp_path / "log.jsonl", key=None)
    df = _read(ref, contract, tmp_path / "log.jsonl", key=None, columns=["AGE", "SEX"])
    assert len(df) == 3000
    with pytest.raises(Z4Error, match="too short"):
        broker.load_key("short")
    key_file, created = broker.keygen(tmp_path / "k" / "pseudonym.key")
    assert created and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert broker.keygen(key_file) == (key_file, False)  # never replaced: pseudonyms must stay stable
    assert broker.load_key("", str(key_file)) == key_file.read_bytes().strip()
    assert broker.load_key("s" * 40, str(key_file)) == b"s" * 40  # the secret env var wins
    assert broker.load_key("", str(tmp_path / "absent")) is None


def test_dedup_and_split_are_the_same_on_pseudonyms(sample_df):
    contract = load_contract(SAMPLE_CONTRACT)[0]
    df = sample_df.head(5000).copy()
    dups = df.iloc[:20].assign(ID=df["ID"].iloc[:20] + 100_000)  # same client twice under new ids
    flips = df.iloc[20:25].assign(ID=df["ID"].iloc[20:25] + 200_000, **{contract.target.column:
                                  1 - df[contract.target.column].iloc[20:25]})
    df = pd.concat([df, dups, flips], ignore_index=True)
    pseud = df.assign(ID=broker.pseudonymise(df["ID"], KEY))
    rules = load_policy(None, contract.dataset_id)
    raw_result, ps_result = run_hygiene(df, contract, rules, None), run_hygiene(pseud, contract, rules, None)
    for name in ("duplicate_rows", "conflicting_labels"):
        g_raw = next(g for g in raw_result.gates if g.name == name)
        g_ps = next(g for g in ps_result.gates if g.name == name)
        assert g_raw.value == g_ps.value > 0
        assert g_ps.details["example_ids"] == [broker.pseudonym(v, KEY) for v in g_raw.details["example_ids"]]
    assert (raw_result.split == ps_result.split).all()  # the content-keyed split ignores the id
    assert pseud["ID"].duplicated().sum() == df["ID"].duplicated().sum()
    by_id = rules.model_copy(update={"split": rules.split.model_copy(update={"key": "id"})})
    again = df.assign(ID=broker.pseudonymise(df["ID"], KEY))  # a second read, same key: same split
    first, second = run_hygiene(pseud, contract, by_id, None), run_hygiene(again, contract, by_id, None)
    assert first.split_strategy == second.split_strategy == "hash(id)"
    assert (first.split == second.split).all()


def _append_many(args):
    log, n, who = args
    for i in range(n):
        broker.append_access(log, {"run_id": who, "i": i, "pad": "x" * 300})


def test_concurrent_appends_never_tear_a_line(tmp_path):
    log = tmp_path / "access_log.jsonl"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pool.map(_append_many, [(str(log), 150, f"run-{k}") for k in range(3)])
    lines = _lines(log)
    assert len(lines) == 450 and all(len([x for x in lines if x["run_id"] == f"run-{k}"]) == 150 for k in range(3))
    out = broker.export_run_log(log, "run-1", tmp_path / "run-1.jsonl")
    assert out["run_lines"] == 150
    assert out["run_lines_sha256"] == sha256_bytes((tmp_path / "run-1.jsonl").read_bytes())


def test_contract_purposes_and_identifiers_are_checked():
    doc = load_contract(SAMPLE_CONTRACT)[0].model_dump(exclude_none=True)
    with pytest.raises(ValueError, match="purpose 'Credit Risk'"):
        Contract.model_validate({**doc, "purposes": ["Credit Risk"]})
    with pytest.raises(ValueError, match="identifier 'NAME' is not declared"):
        Contract.model_validate({**doc, "identifiers": ["NAME"]})
    named = Contract.model_validate({**doc, "identifiers": ["ID", "LIMIT_BAL"]})
    assert named.direct_identifiers == ["ID", "LIMIT_BAL"] and "LIMIT_BAL" not in named.model_features


# --- no read around the broker: a static scan of the package --------------------------------------

READERS = {"read_parquet", "read_table", "ParquetFile", "ParquetDataset", "read_csv", "read_feather",
           "read_orc", "read_pandas", "read_metadata", "dataset", "load_snapshot_frame"}
# module -> why it may call a table reader; anything else reading tables must come through here
READER_ALLOWED = {
    "core/broker.py": "the broker: the only reader of snapshot rows",
    "core/z3.py": "registration reads the SOURCE file (csv/parquet) to write a new snapshot",
    "core/split.py": "load_split reads the run's own split.parquet (row -> split), no snapshot data",
    "core/hygiene/_baseline.py": "the drift baseline's own value counts per feature (no rows, no ids), "
                                 "checked against the sha256 its profile names",
    "cli/consume.py": "`z4 score` reads the user's own input CSV to score it, never a snapshot",
}
# module -> why it may touch a snapshot's data_path; only to hash the bytes, never to decode rows
DATA_PATH_ALLOWED = {
    "core/broker.py": "reads rows", "core/z3.py": "defines SnapshotRef.data_path",
    "core/snapshot/_checks.py": "hash_gate: sha256 of the bytes",
    "core/training/_rebuild.py": "sha256 before rebuilding",
    "audit_events.py": "the OpenLineage schema facet: pq.read_schema, the footer's column names and types, no row",
}
# the one unpseudonymised read (the intake contract gate): the resource passes raw_for_intake,
# the snapshot asset asks for it
RAW_INTAKE = {"resources/broker.py", "assets/data.py"}
# the stages that read rows, each through its StageRun (run.rows(), the broker's reader)
ROW_READING_STAGES = {"core/hygiene/__init__.py", "core/training/__init__.py", "core/security/__init__.py",
                      "core/fairness/__init__.py"}


def _calls(tree) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            out.append((name, node.lineno))
        elif isinstance(node, (ast.ImportFrom,)):
            out += [(a.name, node.lineno) for a in node.names]
    return out


def _scan(rel: str, source: str) -> tuple[list[str], bool]:
    """(reads around the broker in module REL, whether it asks for the raw intake read)."""
    tree = ast.parse(source)
    offenders = [f"{rel}:{line} calls {name}" for name, line in _calls(tree)
                 if name in READERS and rel not in READER_ALLOWED]
    raw = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "data_path" and rel not in DATA_PATH_ALLOWED:
            offenders.append(f"{rel}:{node.lineno} touches .data_path")
        if isinstance(node, ast.keyword) and node.arg == "raw_for_intake" or (
                isinstance(node, ast.Attribute) and node.attr == "intake_reader"):
            raw = True
    return offenders, raw


def test_only_the_broker_reads_snapshot_rows():
    # an allowance for a module that is not there any more would silently allow nothing
    stale = [rel for rel in {*READER_ALLOWED, *DATA_PATH_ALLOWED, *RAW_INTAKE, *ROW_READING_STAGES}
             if not (PKG / rel).is_file()]
    assert stale == [], stale
    offenders, raw_intake = [], []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        found, raw = _scan(rel, path.read_text())
        offenders += found
        raw_intake += [rel] if raw else []
    assert offenders == [], offenders
    # the unpseudonymised read exists only for the intake gate
    assert set(raw_intake) == RAW_INTAKE, raw_intake
    # the broker's pseudonymising reader is handed to every stage in one place ...
    handed = {p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py") if "broker.reader(" in p.read_text()}
    assert handed == {"assets/_stage.py"}, handed
    # ... and the stages that read rows read them through it
    used = {p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py") if "run.rows()" in p.read_text()}
    assert used == ROW_READING_STAGES, used


def test_the_scan_catches_a_bypass():
    bypass = "import pandas as pd\ndef f(ref):\n    return pd.read_parquet(ref.data_path)\n"
    assert ("read_parquet", 3) in _calls(ast.parse(bypass))
    found, _ = _scan("core/fairness/_report.py", bypass)  # in a stage module: both the read and the path
    assert found == ["core/fairness/_report.py:3 calls read_parquet", "core/fairness/_report.py:3 touches .data_path"]
    assert _scan("core/broker.py", bypass) == ([], False)  # the broker itself may
    assert _scan("core/security/_x.py", "def f(b, c):\n    return b.intake_reader(c)\n") == ([], True)


def test_a_contract_violation_on_an_identifier_is_reported_without_its_values(sample_df, register, tmp_path):
    import dataclasses

    from z4_assets.core.snapshot._checks import REDACTED, contract_gate

    df = sample_df.head(500).copy()
    df.loc[:2, "ID"] = [-7001, -7002, -7003]  # the contract says ID >= 1
    ref = register(df, check_contract=False)
    ref = dataclasses.replace(ref, purpose="credit_risk_scoring")
    contract = load_contract(ref.contract_path)[0]
    gate, _ = contract_gate(ref, contract, lambda: _read(ref, contract, tmp_path / "l.jsonl", raw_for_intake=True))
    failure = next(f for f in gate.details["failures"] if f["column"] == "ID")
    assert not gate.passed and failure["count"] == 3 and failure["examples"] == [REDACTED] * 3
    assert "-7001" not in json.dumps(gate.as_dict())
