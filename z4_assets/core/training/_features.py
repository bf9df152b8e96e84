"""The feature spec: which columns feed the model, in what order, and how they are scaled."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract

_NULL, _OTHER = "__null__", "__other__"
MAX_LEARNED_CATEGORIES = 50


@dataclass
class FeatureSpec:
    """Fitted on the training split only; applied identically to every other split."""

    columns: list[dict]

    @property
    def output_names(self) -> list[str]:
        names = []
        for c in self.columns:
            if c["kind"] == "numeric":
                names.append(c["name"])
                if c["null_indicator"]:
                    names.append(f"{c['name']}__is_null")
            else:
                names += [f"{c['name']}={v}" for v in c["categories"]]
        return names

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        blocks = []
        for c in self.columns:
            s = df[c["name"]]
            if c["kind"] == "numeric":
                v = s.to_numpy(dtype="float64", na_value=np.nan)
                null = np.isnan(v)
                v = np.where(null, c["median"], v)
                blocks.append(((v - c["mean"]) / c["std"])[:, None])
                if c["null_indicator"]:
                    blocks.append(null[:, None].astype("float64"))
            else:
                key = s.astype("string").fillna(_NULL)
                cats = c["categories"]
                key = key.where(key.isin(cats), _OTHER)
                codes = pd.Categorical(key, categories=cats).codes
                onehot = np.zeros((len(s), len(cats)))
                onehot[np.arange(len(s)), codes] = 1.0
                blocks.append(onehot)
        return np.hstack(blocks).astype(np.float32) if blocks else np.zeros((len(df), 0), np.float32)

    def to_dict(self) -> dict:
        return {"columns": self.columns, "output_names": self.output_names}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        return cls(columns=d["columns"])


def fit_features(train: pd.DataFrame, contract: Contract) -> FeatureSpec:
    cols = []
    for name in contract.model_features:
        spec, s = contract.columns[name], train[name]
        if contract.is_categorical(name):
            if spec.categories is not None:
                cats = [str(v) for v in spec.categories]
            else:
                counts = s.astype("string").value_counts()
                cats = sorted(counts.index[:MAX_LEARNED_CATEGORIES].tolist())
            if spec.nullable or s.isna().any():
                cats.append(_NULL)
            cats.append(_OTHER)
            cols.append({"name": name, "kind": "onehot", "categories": cats})
        else:
            v = s.to_numpy(dtype="float64", na_value=np.nan)
            finite = v[np.isfinite(v)]
            median = float(np.median(finite)) if finite.size else 0.0
            filled = np.where(np.isfinite(v), v, median)
            std = float(filled.std()) or 1.0
            cols.append({"name": name, "kind": "numeric", "median": median,
                         "mean": float(filled.mean()), "std": std,
                         "null_indicator": bool(spec.nullable or np.isnan(v).any())})
    return FeatureSpec(cols)


def spec_as_dict(spec: FeatureSpec) -> dict:
    return asdict(spec) | {"output_names": spec.output_names}
