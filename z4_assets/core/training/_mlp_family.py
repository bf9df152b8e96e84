"""The mlp family: today's torch MLP, its weights saved as safetensors (no pickle, no code on load)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from z4_assets.core.files import atomic_write_bytes


def safetensors_bytes(module, hidden_sizes: list[int], inputs: int) -> bytes:
    """The state_dict as safetensors, with the architecture in its header metadata."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in sorted(module.state_dict().items())}
    return canonical(save(state, metadata={"family": "mlp", "inputs": str(inputs),
                                           "hidden_sizes": ",".join(str(h) for h in hidden_sizes)}))


def canonical(data: bytes) -> bytes:
    """The same safetensors file with its JSON header's keys sorted: the library writes the metadata
    map in hash order (measured: two saves of one model differed at byte 26), so `z4 rebuild` could
    not compare bytes. Offsets are relative to the data block, which is kept as it is."""
    import json

    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + data[8 + n:]


def module_from_safetensors(data: bytes):
    """(torch module in eval mode, metadata) from safetensors bytes: tensors only, nothing executed."""
    import json

    from safetensors.torch import load

    from z4_assets.core.training._mlp import build_mlp

    header_len = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8:8 + header_len]).get("__metadata__") or {}
    hidden = [int(h) for h in meta.get("hidden_sizes", "").split(",") if h]
    module = build_mlp(int(meta["inputs"]), hidden)
    module.load_state_dict(load(data))
    return module.eval(), meta


class MlpModel:
    """Mini-batch Adam on two logits (core/training/_mlp.py); a TrainingMonitor may be attached."""

    family = "mlp"
    artifact = "model.safetensors"
    attack = "gradient"

    def __init__(self):
        self.result, self.monitor, self.hidden, self.inputs = None, None, [], 0

    def fit(self, x_train, y_train, x_val, y_val, hp: dict) -> dict:
        from z4_assets.core.training._mlp import train_mlp

        self.hidden, self.inputs = list(hp["hidden_sizes"]), int(x_train.shape[1])
        self.result = train_mlp(x_train, y_train, x_val, y_val, hp, self.monitor)
        return {"best_epoch": self.result.best_epoch, "history": self.result.history,
                "schedule": self.result.schedule, "seconds": self.result.seconds}

    @property
    def module(self):
        return self.result.model

    @property
    def gradient_module(self):
        return self.result.model

    def predict_proba(self, x) -> np.ndarray:
        from z4_assets.core.training._mlp import predict_proba

        return predict_proba(self.module, np.ascontiguousarray(x, dtype=np.float32)).astype(np.float64)

    def save(self, folder) -> Path:
        return atomic_write_bytes(Path(folder) / self.artifact, safetensors_bytes(self.module, self.hidden, self.inputs))

    def load(self, path):
        from z4_assets.core.training._artifact import TorchScorer

        module, _ = module_from_safetensors(Path(path).read_bytes())
        return TorchScorer(module, "mlp")

    def digest(self) -> str:
        return self.result.digest
