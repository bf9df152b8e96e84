"""A user's own model, defined in the test suite and trained through the whole factory (issue 17).

LeastSquaresScorecard follows the README's plug-in example (which fits by Newton steps in numpy): a
logistic scorecard fitted with scikit-learn, exported to ONNX by hand (onnx.helper). (Hand-rolled
weightings tried first on the sample: unweighted flagged 6% at a 22% base rate and failed
operating_point; weighted, it failed the fairness gates: the factory's verdicts, not the test's.) Two deliberately bad variants
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
        # any library will do: here scikit-learn's lbfgs; the export below is the user's own (no skl2onnx)
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=float(hp.get("C", 1.0)), tol=1e-6, max_iter=1000).fit(x_train, y_train)
        self.w = np.r_[clf.coef_[0], clf.intercept_[0]].astype(np.float32)
        return {"best_epoch": int(clf.n_iter_[0])}

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
