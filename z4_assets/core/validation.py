"""The contract as a pandera schema: dtypes, ranges, categories and nulls, checked lazily."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract, ColumnSpec

PANDAS_DTYPES = {
    "integer": "Int64",
    "float": "float64",
    "string": "string",
    "boolean": "boolean",
    "datetime": "datetime64[ns]",
}


def conform_dtypes(df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Cast columns to the contract's dtypes where that loses nothing; leave the rest for the gate.

    CSV inference varies (an integer column with a gap reads as float); a real type error
    (text in a numeric column, 1.5 in an integer column) is left untouched so that the
    contract gate reports it.
    """
    out = {}
    for name in df.columns:
        spec = contract.columns.get(name)
        col = normalise_text(df[name], contract)
        out[name] = col if spec is None else _conform(col, spec)
    return pd.DataFrame(out, index=df.index)


def normalise_text(s: pd.Series, contract: Contract) -> pd.Series:
    """The contract's `trim_whitespace`, then its `missing_values` tokens as nulls, on a text column
    (numbers and dates are left as they are). Idempotent: a stored snapshot is already normalised."""
    if not (contract.trim_whitespace or contract.missing_values):
        return s
    if not (s.dtype == object or pd.api.types.is_string_dtype(s)):
        return s
    text = s.astype("string")
    if contract.trim_whitespace:
        text = text.str.strip()
    if contract.missing_values:
        text = text.mask(text.isin(contract.missing_values))
    if s.dtype == object:  # keep non-text objects (numbers read from a mixed column) as they were
        keep = s.map(lambda v: not isinstance(v, str))
        return s.where(keep, text.astype(object).where(text.notna(), None))
    return text


def _conform(s: pd.Series, spec: ColumnSpec) -> pd.Series:
    want = PANDAS_DTYPES[spec.dtype]
    if str(s.dtype) == want:
        return s
    try:
        if spec.dtype in ("integer", "float"):
            if pd.api.types.is_bool_dtype(s):
                return s
            num = s if pd.api.types.is_numeric_dtype(s) else pd.to_numeric(s, errors="raise")
            if spec.dtype == "float":
                return num.astype("float64")
            vals = num.to_numpy(dtype="float64", na_value=np.nan)
            finite = vals[~np.isnan(vals)]
            if np.isinf(finite).any() or (finite != np.round(finite)).any():
                return s
            return num.astype("Int64")
        if spec.dtype == "string":
            return s.astype("string")
        if spec.dtype == "boolean":
            if pd.api.types.is_numeric_dtype(s) and s.dropna().isin([0, 1]).all():
                return s.astype("boolean")
            if s.dtype == object or pd.api.types.is_string_dtype(s):
                low = s.astype("string").str.strip().str.lower()
                mapped = low.map({"true": True, "false": False, "1": True, "0": False})
                if mapped[low.notna()].notna().all():
                    return mapped.astype("boolean")
            return s
        if spec.dtype == "datetime":
            if pd.api.types.is_numeric_dtype(s):
                return s
            out = pd.to_datetime(s, errors="raise", utc=True).dt.tz_convert(None)
            return out.astype("datetime64[ns]")
    except (ValueError, TypeError, OverflowError):
        return s
    return s


def build_schema(contract: Contract):
    """A lazy, strict pandera schema built from the contract file alone."""
    import pandera.pandas as pa

    columns = {}
    for name, spec in contract.columns.items():
        checks = []
        if spec.min is not None or spec.max is not None:
            lo = -np.inf if spec.min is None else spec.min
            hi = np.inf if spec.max is None else spec.max
            checks.append(pa.Check.in_range(lo, hi))
        if spec.categories is not None:
            checks.append(pa.Check.isin(spec.categories))
        if name == contract.target.column:
            positive = contract.target.positive
            checks.append(pa.Check(
                lambda s, p=positive: (s.nunique(dropna=True) == 2) and bool((s == p).any()),
                name="binary_target_with_positive_class",
                error=f"target must have exactly two classes, one of them {positive!r}",
            ))
        columns[name] = pa.Column(
            PANDAS_DTYPES[spec.dtype], checks=checks, nullable=spec.nullable, coerce=False,
            required=True,
        )
    return pa.DataFrameSchema(columns, strict=True, name=f"contract:{contract.dataset_id}")


@dataclass
class ContractValidation:
    passed: bool
    failure_count: int
    failures: list[dict] = field(default_factory=list)

    @property
    def message(self) -> str:
        if self.passed:
            return "data satisfies the contract"
        parts = [f"{f['column']}: {f['check']} ({f['count']} rows, e.g. {f['examples']})"
                 for f in self.failures[:5]]
        more = f"; +{len(self.failures) - 5} more" if len(self.failures) > 5 else ""
        return f"{self.failure_count} contract violations: " + "; ".join(parts) + more


REDACTED = "<redacted: direct identifier>"


def validate_contract(df: pd.DataFrame, contract: Contract) -> ContractValidation:
    """Validate every column at once and summarise failures per column and check (up to 3 distinct
    offending values each; a direct identifier's values are never shown)."""
    import pandera.errors as pe

    schema = build_schema(contract)
    try:
        schema.validate(df, lazy=True)
    except pe.SchemaErrors as err:
        failures = _summarise(err.failure_cases)
        for failure in failures:
            if failure["column"] in contract.direct_identifiers:
                failure["examples"] = [REDACTED] * len(failure["examples"])
        return ContractValidation(False, len(err.failure_cases), failures)
    return ContractValidation(True, 0)


def short_check(check: str) -> str:
    """A pandera check name as a user reads it: 'isin([...long list...])' -> 'not a declared category'."""
    for prefix, words in (("isin", "not a declared category"), ("in_range", "out of range"),
                          ("not_nullable", "null where not nullable"), ("dtype", "wrong type"),
                          ("column_in_schema", "column not in the contract"),
                          ("binary_target", "target not binary with its positive class")):
        if check.startswith(prefix):
            return words
    return check


def refusal(result: ContractValidation, max_columns: int = 6) -> str:
    """One line: each offending column (worst first) with its first offending values."""
    parts = [f"{f['column']}: {short_check(f['check'])} ({f['count']} rows, e.g. {', '.join(f['examples']) or '-'})"
             for f in result.failures[:max_columns]]
    more = f"; +{len(result.failures) - max_columns} more" if len(result.failures) > max_columns else ""
    return (f"data breaks its contract ({result.failure_count} violations; nothing registered): "
            + "; ".join(parts) + more)


def _summarise(fc: pd.DataFrame) -> list[dict]:
    fc = fc.copy()
    fc["column"] = fc["column"].fillna(fc["schema_context"]).astype(str)
    fc["check"] = fc["check"].astype(str)
    missing = fc["check"] == "column_in_dataframe"
    fc.loc[missing, "column"] = fc.loc[missing, "failure_case"].astype(str)
    fc.loc[missing, "check"] = "missing column"
    rows = []
    if "index" in fc:  # the first offending values in row order
        fc = fc.assign(_row=pd.to_numeric(fc["index"], errors="coerce")).sort_values("_row", kind="stable")
    for (column, check), grp in fc.groupby(["column", "check"], sort=True, dropna=False):
        examples = [repr(v) if isinstance(v, str) else str(v)
                    for v in pd.unique(grp["failure_case"].dropna())[:3].tolist()]
        if not examples and len(grp):
            examples = ["null"]
        rows.append({"column": column, "check": check, "count": int(len(grp)),
                     "examples": examples})
    rows.sort(key=lambda r: -r["count"])
    return rows
