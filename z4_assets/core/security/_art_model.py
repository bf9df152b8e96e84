"""The trained MLP as ART sees it: two logits, float32 inputs, per-feature clip values."""

from __future__ import annotations

import numpy as np

ART_BATCH = 512  # 3.6x faster than ART's default of 32 (shared/notes/ml-libraries.md)


def art_classifier(model, n_inputs: int, clip: tuple[np.ndarray, np.ndarray] | None = None):
    import torch.nn as nn
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=(n_inputs,),
                             nb_classes=2, clip_values=clip, device_type="cpu")


def hidden_last(model):
    """The same MLP with its hidden block registered last.

    ART's poison detectors read activations from the last top-level module; for the factory's
    nn.Sequential that is the logits layer. Registering the hidden block last makes them read
    the last hidden layer instead, with identical outputs.
    """
    import torch.nn as nn

    class HiddenLast(nn.Module):
        def __init__(self, seq):
            super().__init__()
            self.head = seq[-1]
            self.hidden = nn.Sequential(*list(seq)[:-1])

        def forward(self, x):
            return self.head(self.hidden(x))

    return HiddenLast(model).eval()


def proba(model, x: np.ndarray) -> np.ndarray:
    from z4_assets.core.training import predict_proba

    return predict_proba(model, np.ascontiguousarray(x, dtype=np.float32))
