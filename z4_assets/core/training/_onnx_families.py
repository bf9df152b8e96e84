"""The logistic (scikit-learn) and gbdt (LightGBM) families, exported to ONNX: no pickle ever.

Both are deterministic: lbfgs on fixed data, LightGBM with deterministic=True, row-wise histograms,
a pinned seed and thread count. Their digest is the sha256 of the exported ONNX bytes, which are
made canonical (fixed graph name, no producer timestamp), so `z4 rebuild` compares artifact bytes.

LightGBM compares float64(x) <= t with a float64 threshold, ONNX Runtime compares float32(x) <=
float32(t). Rounding t to float32 can flip a row that sits between the two. Every threshold is
therefore snapped down to the largest float32 <= t before export: on float32 inputs (which is all
the FeatureSpec produces) the snapped booster decides exactly as the original one, and the ONNX
model exactly as the snapped one (measured: native change 0, parity 2.5e-7).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from z4_assets.core.files import atomic_write_bytes

ONNX_OPSET = 15        # the highest onnxmltools 1.16's LightGBM converter supports
GRAPH_INPUT = "x"      # float32 [rows, features]: the FeatureSpec's matrix
PROBABILITIES = 1      # output index of the (rows, 2) probabilities (0 is the label)


def canonical_onnx(model, name: str) -> bytes:
    """Serialized ONNX bytes that depend only on the fitted model. The converters draw a random graph
    name, and list opset_import in the order of a Python set (onnxmltools' container keeps its
    (domain, version) pairs in one): the same booster exported in two processes gave two digests in
    about one run out of six. Both are fixed here; opset_import is sorted by domain."""
    model.graph.name = name
    model.producer_version = ""
    model.doc_string = ""
    opsets = sorted(((o.domain, o.version) for o in model.opset_import))
    del model.opset_import[:]
    for domain, version in opsets:
        model.opset_import.add(domain=domain, version=version)
    return model.SerializeToString(deterministic=True)


def onnx_predict(session, x: np.ndarray) -> np.ndarray:
    """P(positive) from an ONNX model with input 'x': its (rows, 2) probabilities output (the second
    output of a converter's [label, probabilities], or the only output of a hand-built graph)."""
    outs = session.run(None, {GRAPH_INPUT: np.ascontiguousarray(x, dtype=np.float32)})
    out = np.asarray(outs[PROBABILITIES] if len(outs) > 1 else outs[0], dtype=np.float64)
    return out[:, 1] if out.ndim == 2 and out.shape[1] == 2 else out.reshape(-1)


class _OnnxModel:
    """Shared by both families: the ONNX bytes are the artifact and the digest."""

    artifact = "model.onnx"
    attack = "decision"
    gradient_module = None

    def __init__(self):
        self.native, self.onnx_bytes, self.facts = None, b"", {}

    def save(self, folder) -> Path:
        return atomic_write_bytes(Path(folder) / self.artifact, self.onnx_bytes)

    def load(self, path):
        from z4_assets.core.training._artifact import OnnxScorer

        return OnnxScorer(Path(path).read_bytes())

    def digest(self) -> str:
        return hashlib.sha256(self.onnx_bytes).hexdigest()


class LogisticModel(_OnnxModel):
    """scikit-learn LogisticRegression (lbfgs, L2); its coefficients are the scorecard."""

    family = "logistic"
    attack = "gradient"   # differentiable: evasion runs PGD on an exact torch copy of the coefficients

    def fit(self, x_train, y_train, x_val, y_val, hp: dict) -> dict:
        from sklearn.linear_model import LogisticRegression
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType

        self.native = LogisticRegression(C=hp["C"], max_iter=hp["max_iter"], tol=hp["tol"], solver="lbfgs",
                                         class_weight=None if hp["class_weight"] == "none" else "balanced")
        self.native.fit(x_train, y_train)
        onnx_model = to_onnx(self.native, initial_types=[(GRAPH_INPUT, FloatTensorType([None, x_train.shape[1]]))],
                             options={id(self.native): {"zipmap": False}}, target_opset=ONNX_OPSET)
        self.onnx_bytes = canonical_onnx(onnx_model, "z4_logistic")
        self.facts = {"best_epoch": int(np.max(self.native.n_iter_)), "iterations": int(np.max(self.native.n_iter_)),
                      "coefficients": [float(c) for c in self.native.coef_[0]],
                      "intercept": float(self.native.intercept_[0])}
        return self.facts

    def predict_proba(self, x) -> np.ndarray:
        return self.native.predict_proba(np.asarray(x, dtype=np.float32))[:, 1]

    @property
    def gradient_module(self):
        from z4_assets.core.training._artifact import logistic_module

        return logistic_module(self.facts["coefficients"], self.facts["intercept"])


def snap_thresholds(model_text: str) -> str:
    """The booster's text with every split threshold rounded down to float32 (see the module doc)."""
    def snap(line: str) -> str:
        out = []
        for t in (float(v) for v in line.split("=", 1)[1].split()):
            f = np.float32(t)
            if float(f) > t:
                f = np.nextafter(f, np.float32(-np.inf))
            out.append(repr(float(f)))
        return "threshold=" + " ".join(out)

    return "\n".join(snap(line) if line.startswith("threshold=") else line
                     for line in model_text.split("\n") if not line.startswith("tree_sizes="))


class GbdtModel(_OnnxModel):
    """LightGBM gradient-boosted trees, deterministic settings."""

    family = "gbdt"

    def fit(self, x_train, y_train, x_val, y_val, hp: dict) -> dict:
        import lightgbm as lgb
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        clf = lgb.LGBMClassifier(
            n_estimators=hp["n_estimators"], learning_rate=hp["learning_rate"], num_leaves=hp["num_leaves"],
            max_depth=hp["max_depth"], min_child_samples=hp["min_child_samples"], reg_lambda=hp["reg_lambda"],
            class_weight=None if hp["class_weight"] == "none" else "balanced", random_state=hp["seed"],
            n_jobs=hp["threads"], deterministic=True, force_row_wise=True, verbose=-1)
        clf.fit(x_train, y_train)
        self.native = lgb.Booster(model_str=snap_thresholds(clf.booster_.model_to_string()))
        onnx_model = convert_lightgbm(self.native, initial_types=[(GRAPH_INPUT, FloatTensorType([None, x_train.shape[1]]))],
                                      zipmap=False, target_opset=ONNX_OPSET)
        self.onnx_bytes = canonical_onnx(onnx_model, "z4_gbdt")
        self.facts = {"best_epoch": int(self.native.num_trees()), "trees": int(self.native.num_trees()),
                      "lightgbm": lgb.__version__}
        return self.facts

    def predict_proba(self, x) -> np.ndarray:
        return np.asarray(self.native.predict(np.asarray(x, dtype=np.float32), num_threads=1), dtype=np.float64)
