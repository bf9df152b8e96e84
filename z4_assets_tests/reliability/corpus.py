"""The bad-input corpus: broken and hostile files handed to `z4 snapshot add`, each with the one
clear line it must be refused with. Snapshot-level and config-level cases that can only be caught
by the factory itself live in factory_corpus.py."""

from __future__ import annotations

import copy
import io
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import yaml

from z4_assets_tests.conftest import DATASET, SAMPLE_CONTRACT, SAMPLE_CSV, SAMPLE_DATASET_CONFIG

HEAD_ROWS = 2000  # registration cases are refused before any statistics: a small file proves the point


def sample_csv(rows: int = HEAD_ROWS) -> str:
    lines = SAMPLE_CSV.read_text(encoding="utf-8").split("\n")
    return "\n".join(lines[: rows + 1]) + "\n"


def with_cell(text: str, row: int, column: str, value: str) -> str:
    """The CSV text with one cell replaced (row 0 = first data row)."""
    lines = text.split("\n")
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = value
    lines[row + 1] = ",".join(cells)
    return "\n".join(lines)


def contract_doc() -> dict:
    return yaml.safe_load(SAMPLE_CONTRACT.read_text(encoding="utf-8"))


def config_doc() -> dict:
    return yaml.safe_load(SAMPLE_DATASET_CONFIG.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class RegistrationCase:
    """Inputs to add_snapshot that must be refused: one Z4Error line naming `blame`, nothing written."""

    id: str
    build: Callable[[Path], dict]  # writes the inputs under a folder -> add_snapshot keyword arguments
    blame: str  # the argument whose file the message names: data_path, contract_path, dataset_config or ""
    expect: str  # a phrase of the message


def inputs(tmp: Path, data: bytes | None = None, name: str = "data.csv", contract: dict | str | None = None,
           config: dict | str | None | Path = SAMPLE_DATASET_CONFIG, dataset_id: str = DATASET) -> dict:
    """The sample's inputs written under tmp, with whatever the case breaks swapped in."""
    data_path = tmp / name
    data_path.write_bytes(sample_csv().encode() if data is None else data)
    contract_path = tmp / "contract.yaml"
    if contract is None:
        contract_path.write_bytes(SAMPLE_CONTRACT.read_bytes())
    else:
        contract_path.write_text(contract if isinstance(contract, str) else yaml.safe_dump(contract, sort_keys=False))
    if isinstance(config, (dict, str)):
        path = tmp / "dataset.yaml"
        path.write_text(config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False))
        config = path
    return {"dataset_id": dataset_id, "contract_path": contract_path, "data_path": data_path,
            "dataset_config": config}


def _parquet(rows: int) -> bytes:
    buf = io.BytesIO()
    pd.read_csv(io.StringIO(sample_csv(rows))).to_parquet(buf, index=False)
    return buf.getvalue()


def _contract(change: Callable[[dict], None]) -> dict:
    doc = copy.deepcopy(contract_doc())
    change(doc)
    return doc


def _config(change: Callable[[dict], None]) -> dict:
    doc = copy.deepcopy(config_doc())
    change(doc)
    return doc


def _latin1_header() -> bytes:
    return sample_csv().replace("EDUCATION", "\u00c9DUCATION", 1).encode("latin-1")


def _latin1_value() -> bytes:
    return with_cell(sample_csv(), 0, "SEX", "m\u00e2le").encode("latin-1")


REGISTRATION_CASES = [
    RegistrationCase("empty_file", lambda t: inputs(t, data=b""), "data_path", "data file is empty"),
    RegistrationCase("header_only", lambda t: inputs(t, data=sample_csv(0).encode()), "data_path",
                     "header but no rows"),
    RegistrationCase("binary_garbage_named_csv", lambda t: inputs(t, data=bytes(range(256)) * 40), "data_path",
                     "not a readable csv table"),
    RegistrationCase("truncated_csv", lambda t: inputs(t, data=sample_csv().encode()[:-40]), "data_path",
                     "Expected 25 columns"),
    RegistrationCase("truncated_parquet", lambda t: inputs(t, data=_parquet(HEAD_ROWS)[:20_000], name="data.parquet"),
                     "data_path", "not a readable parquet table"),
    RegistrationCase("utf16_csv_with_bom", lambda t: inputs(t, data=sample_csv().encode("utf-16")), "data_path",
                     "encoded as UTF-16, not UTF-8"),
    RegistrationCase("utf16be_csv_with_bom", lambda t: inputs(t, data=b"\xfe\xff" + sample_csv().encode("utf-16-be")),
                     "data_path", "encoded as UTF-16, not UTF-8"),
    RegistrationCase("latin1_header", lambda t: inputs(t, data=_latin1_header()), "data_path",
                     "header is not UTF-8 text"),
    RegistrationCase("latin1_value", lambda t: inputs(t, data=_latin1_value()), "data_path",
                     "column 'SEX' is not UTF-8 text"),
    RegistrationCase("spreadsheet_not_table", lambda t: inputs(t, data=b"PK\x03\x04" + b"\0" * 64, name="data.xlsx"),
                     "data_path", "unsupported data format '.xlsx'"),
    RegistrationCase("contract_unknown_key", lambda t: inputs(t, contract=_contract(lambda d: d.update(owner_team="risk"))),
                     "contract_path", "invalid contract at owner_team: Extra inputs are not permitted"),
    RegistrationCase("contract_column_unknown_key",
                     lambda t: inputs(t, contract=_contract(lambda d: d["columns"]["AGE"].update(unit="years"))),
                     "contract_path", "invalid contract at columns.AGE.unit"),
    RegistrationCase("contract_not_yaml", lambda t: inputs(t, contract="columns: [AGE, {dtype: integer\n"),
                     "contract_path", "contract is not valid YAML"),
    RegistrationCase("contract_target_undeclared",
                     lambda t: inputs(t, contract=_contract(lambda d: d["target"].update(column="defaulted"))),
                     "contract_path", "target 'defaulted' is not declared under columns"),
    RegistrationCase("contract_min_above_max",
                     lambda t: inputs(t, contract=_contract(lambda d: d["columns"]["AGE"].update(min=130))),
                     "contract_path", "AGE: min 130.0 is above max 120.0"),
    RegistrationCase("unknown_dataset_id", lambda t: inputs(t, dataset_id="mortgage_book", config=None),
                     "contract_path", "unknown dataset id 'mortgage_book'"),
    RegistrationCase("path_traversal_dataset_id", lambda t: inputs(t, dataset_id="../../escape", config=None), "",
                     "invalid dataset id '../../escape'"),
    RegistrationCase("dataset_config_for_other_dataset",
                     lambda t: inputs(t, config=_config(lambda d: d.update(dataset_id="mortgage_book"))),
                     "dataset_config", "dataset config is for 'mortgage_book', not 'taiwan_credit_default'"),
    RegistrationCase("dataset_config_missing_purpose", lambda t: inputs(t, config=_config(lambda d: d.pop("purpose"))),
                     "dataset_config", "invalid dataset config at purpose: Field required"),
    RegistrationCase("dataset_config_unknown_key",
                     lambda t: inputs(t, config=_config(lambda d: d.update(risk_tier="high"))),
                     "dataset_config", "invalid dataset config at risk_tier"),
]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def promoted(tracking_uri: str, factory_root: Path) -> list[str]:
    """Everything that would count as promotion: registry entries, signed packages, promotion records."""
    found = []
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    if db.is_file():
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            for table in ("registered_models", "model_versions", "registered_model_aliases"):
                n = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # nosec B608 # fixed names
                found += [f"mlflow {table}: {n} row(s)"] if n else []
        finally:
            con.close()
    for pattern in ("package.tar.gz", "package", "promotion.json", "model.sig"):
        found += [str(p) for p in factory_root.rglob(pattern)]
    return found
