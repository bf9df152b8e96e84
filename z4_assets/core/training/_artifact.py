"""Load a trained model back from its folder for scoring: ONNX through onnxruntime, safetensors into
torch tensors. Nothing is unpickled; a pickle anywhere in the folder, an artifact the config does not
name, or bytes whose digest is not the recorded one are refused with one line naming the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from z4_assets.core.errors import Z4Error

ALLOWED_ARTIFACTS = ("model.onnx", "model.safetensors")
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".joblib", ".ckpt", ".bin", ".npy", ".npz")


def looks_like_pickle(path: Path) -> bool:
    """A pickle stream (protocol 2+ opcode), a torch.save zip (data.pkl), or a pickle-ish suffix."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            return True
        if head[:2] == b"PK":
            import zipfile

            try:
                with zipfile.ZipFile(path) as z:
                    return any(n.endswith(".pkl") for n in z.namelist())
            except zipfile.BadZipFile:
                return False
    return False


def pickles_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not p.is_symlink() and looks_like_pickle(p))


class OnnxScorer:
    """P(positive) from ONNX bytes through onnxruntime (single-threaded, CPU)."""

    def __init__(self, data: bytes, family: str = "onnx", attack: str | None = "decision"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        self.family, self.attack, self.gradient_module = family, attack, None

    def predict_proba(self, x) -> np.ndarray:
        from z4_assets.core.training._onnx_families import onnx_predict

        return onnx_predict(self.session, x)


class TorchScorer:
    def __init__(self, module, family: str, attack: str | None = "gradient"):
        self.module, self.family, self.attack = module, family, attack
        self.gradient_module = module

    def predict_proba(self, x) -> np.ndarray:
        from z4_assets.core.training._mlp import predict_proba

        return predict_proba(self.module, np.ascontiguousarray(x, dtype=np.float32)).astype(np.float64)


def logistic_module(coefficients: list[float], intercept: float):
    """An exact torch copy of a logistic scorecard as two logits [0, w.x + b] (softmax = sigmoid)."""
    import torch
    import torch.nn as nn

    lin = nn.Linear(len(coefficients), 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
        lin.weight[1] = torch.tensor(coefficients, dtype=torch.float32)
        lin.bias[1] = float(intercept)
    return nn.Sequential(lin).eval()


def load_scorer(model_dir: Path, config: dict, expected_digest: str | None = None):
    """The scorer of a model folder, after the pickle, artifact-name and digest checks."""
    from z4_assets.core.training._mlp import state_dict_digest
    from z4_assets.core.training._mlp_family import module_from_safetensors

    d = Path(model_dir)
    if found := pickles_in(d):
        raise Z4Error(f"refusing a pickle file in the model folder: {found[0]} (the factory never unpickles)", d)
    name = config.get("artifact")
    if name not in ALLOWED_ARTIFACTS:
        raise Z4Error(f"model config names artifact {name!r}, not one of {', '.join(ALLOWED_ARTIFACTS)}", d)
    path = d / name
    if not path.is_file() or path.is_symlink():
        raise Z4Error("model file is missing (or a symlink)", path)
    data = path.read_bytes()
    family, recorded = config.get("family", "mlp"), config.get("state_dict_sha256")
    try:
        if name == "model.onnx":
            digest = hashlib.sha256(data).hexdigest()
            if digest != recorded:
                raise Z4Error(f"model digest {digest[:16]}... differs from the recorded {str(recorded)[:16]}...", path)
            scorer = OnnxScorer(data, family, config.get("attack"))
            if family == "logistic" and config.get("scorecard"):
                sc = config["scorecard"]
                scorer.gradient_module = logistic_module(sc["coefficients"], sc["intercept"])
        else:
            module, _ = module_from_safetensors(data)
            digest = state_dict_digest(module)
            if digest != recorded:
                raise Z4Error(f"weights digest {digest[:16]}... differs from the recorded {str(recorded)[:16]}...", path)
            scorer = TorchScorer(module, family, config.get("attack", "gradient"))
    except Z4Error:
        raise
    except Exception as e:  # noqa: BLE001 - any parser error of a foreign file is one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Z4Error(f"cannot load the model artifact: {first[:200]}", path) from None
    if expected_digest and digest != expected_digest:
        raise Z4Error(f"model digest {digest[:16]}... differs from the {expected_digest[:16]}... this "
                      "lineage was built on", path)
    return scorer
