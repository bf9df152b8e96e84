"""A user's own model, defined in the test suite and trained through the whole factory (issue 17).

LeastSquaresScorecard is the README's plug-in example: a ridge-penalised logistic regression fitted by
Newton's method in numpy on the factory's feature matrix, exported to ONNX by hand (onnx.helper). Two deliberately bad variants
show that a plug-in cannot skip a gate: one ships an export that does not score like the model it
trained (artifact_parity fails), one declares no attack the evasion stage can run (refused).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


class LeastSquaresScorecard:
    artifact, attack = "model.onnx", "decision"     # decision: the factory attacks it with HopSkipJump
    export_shift = 0.0

    def fit(self, x_train, y_train, x_val, y_val, hp):
        a = np.c_[x_train, np.ones(len(x_train))].astype(np.float64)
        w, ridge = np.zeros(a.shape[1]), float(hp.get("ridge", 1.0)) * np.eye(a.shape[1])
        s = np.where(y_train == 1, float(hp.get("positive_weight", 1.2)), 1.0)   # weight of a positive row
        for _ in range(int(hp.get("iterations", 25))):                    # Newton steps on the log-loss
            p = 1.0 / (1.0 + np.exp(-a @ w))
            w -= np.linalg.solve((a.T * (s * p * (1 - p))) @ a + ridge, a.T @ (s * (p - y_train)) + ridge @ w)
        self.w = w.astype(np.float32)
        return {"best_epoch": int(hp.get("iterations", 25))}

    def predict_proba(self, x):
        z = np.asarray(x, np.float32) @ self.w[:-1] + self.w[-1]
        return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))

    def onnx_bytes(self) -> bytes:
        from onnx import TensorProto, helper, numpy_helper

        k = len(self.w) - 1
        weights = np.zeros((k, 2), np.float32)
        weights[:, 1] = self.w[:-1]
        bias = np.array([0.0, self.w[-1] + self.export_shift], np.float32)
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "W"], ["z"]), helper.make_node("Add", ["z", "B"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
            "least_squares_scorecard",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
            [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
            [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
        return model.SerializeToString(deterministic=True)

    def save(self, folder):
        path = Path(folder) / self.artifact
        path.write_bytes(self.onnx_bytes())
        return path

    def load(self, path):
        import onnxruntime as ort

        session = ort.InferenceSession(Path(path).read_bytes(), providers=["CPUExecutionProvider"])
        loaded = LeastSquaresScorecard()
        loaded.predict_proba = lambda x: session.run(None, {"x": np.asarray(x, np.float32)})[0][:, 1]
        return loaded

    def digest(self):
        return hashlib.sha256(self.onnx_bytes()).hexdigest()


class ShiftedExport(LeastSquaresScorecard):
    """Its ONNX export adds 0.01 to the intercept: it ships a model nobody evaluated."""
    export_shift = 0.01


class Unattackable(LeastSquaresScorecard):
    """Declares no attack (neither gradient nor decision): the evasion stage must refuse it."""
    attack = None


def scorecard():
    return LeastSquaresScorecard()


def shifted_export():
    return ShiftedExport()


def unattackable():
    return Unattackable()


def pickles_itself():
    """Saves a pickle: the factory refuses the artifact at training."""
    class Pickler(LeastSquaresScorecard):
        artifact = "model.onnx"

        def save(self, folder):
            import pickle

            path = Path(folder) / self.artifact
            path.write_bytes(pickle.dumps({"w": self.w.tolist()}))
            return path
    return Pickler()
