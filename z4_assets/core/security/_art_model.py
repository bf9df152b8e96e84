"""The trained model as ART sees it: two classes, float32 inputs, per-feature clip values.

A differentiable family (mlp; logistic through an exact torch copy of its coefficients) is a
PyTorchClassifier; any other family is a black box over its exported artifact's scores, whose
per-row loss is the same cross-entropy the torch path computes."""

from __future__ import annotations

import numpy as np

ART_BATCH = 512  # 3.6x faster than ART's default of 32 (shared/notes/ml-libraries.md)


def gradient_module(model):
    """The torch module an attack can differentiate, or None (a scorer without one, e.g. gbdt)."""
    import torch.nn as nn

    if isinstance(model, nn.Module):
        return model
    return getattr(model, "gradient_module", None)


def art_classifier(model, n_inputs: int, clip: tuple[np.ndarray, np.ndarray] | None = None):
    module = gradient_module(model)
    if module is not None:
        import torch.nn as nn
        from art.estimators.classification import PyTorchClassifier

        return PyTorchClassifier(model=module, loss=nn.CrossEntropyLoss(), input_shape=(n_inputs,),
                                 nb_classes=2, clip_values=clip, device_type="cpu")
    return black_box(model, n_inputs, clip)


def black_box(model, n_inputs: int, clip=None):
    """ART BlackBoxClassifier over the scorer's P(positive), with a per-row cross-entropy loss."""
    from art.estimators.classification import BlackBoxClassifier

    def two_columns(x):
        p = np.clip(proba(model, x), 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1).astype(np.float32)

    class ScoredClassifier(BlackBoxClassifier):
        def compute_loss(self, x, y, **kwargs):
            labels = np.asarray(y).argmax(axis=1) if np.ndim(y) == 2 else np.asarray(y, dtype=int)
            p = two_columns(x)[np.arange(len(labels)), labels]
            return -np.log(np.clip(p.astype(np.float64), 1e-12, 1.0))

    return ScoredClassifier(two_columns, (n_inputs,), 2, clip_values=clip)


def hidden_last(model):
    """The same MLP with its hidden block registered last.

    ART's poison detectors read activations from the last top-level module; for the factory's
    nn.Sequential that is the logits layer. Registering the hidden block last makes them read
    the last hidden layer instead, with identical outputs.
    """
    import torch.nn as nn

    seq = gradient_module(model)

    class HiddenLast(nn.Module):
        def __init__(self, seq):
            super().__init__()
            self.head = seq[-1]
            self.hidden = nn.Sequential(*list(seq)[:-1])

        def forward(self, x):
            return self.head(self.hidden(x))

    return HiddenLast(seq).eval()


def proba(model, x: np.ndarray) -> np.ndarray:
    from z4_assets.core.training import predict_proba

    return np.asarray(predict_proba(model, np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float64)
