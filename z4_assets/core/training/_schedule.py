"""How long and on what weighting the MLP trains: to convergence, not to a fixed epoch count.

- The epoch budget is scaled to the data: enough epochs for about `step_budget` optimizer steps
  (a 700-row training split has 2 batches an epoch, a 21,000-row one 41), within
  [`min_epochs`, `max_epochs`]. `epochs` set to a number caps it instead.
- Early stopping: training stops when the validation loss (class-weighted, as the training loss)
  has not improved by more than `min_delta` for `patience` epochs; the best epoch's weights are kept.
- Class weighting: `balanced` weighs each class by n / (2 * its count), so a minority class of
  12% counts as much as the majority; `auto` does so when the minority share of the training split
  is below `imbalance_below`, `none` never.

A hyperparameter missing from a stored config means the behaviour before these existed (fixed
epochs, no early stopping, no weighting): a package made then rebuilds bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# What a missing key means (the old behaviour) and what a TrainConfig gives by default live apart:
# the defaults are in z4_assets/assets/model.py (TrainConfig), the only place a run gets them.
CLASS_WEIGHTS = ("auto", "balanced", "none")

# The converged schedule, TrainConfig's default since issue 16: a scaled epoch budget, early stopping,
# class weighting. The bundled sample's dataset.yaml pins the schedule before it (its converged model
# fails the AGE fairness and PGD gates: docs/gates.md, "Training to convergence"), a model-risk
# decision recorded in that file, which every snapshot of the sample carries (hashed in its manifest).
CONVERGED = {"epochs": None, "patience": 10, "class_weight": "auto"}


@dataclass(frozen=True)
class Schedule:
    epochs: int                    # the epoch budget
    budget_rule: str               # how it was set, for the record
    patience: int                  # 0: no early stopping
    min_delta: float
    class_weights: tuple[float, float] | None   # (negative, positive) loss weights, None: unweighted
    weighting: str                 # why, for the record

    def as_dict(self) -> dict:
        return {"epoch_budget": self.epochs, "budget_rule": self.budget_rule, "patience": self.patience,
                "min_delta": self.min_delta, "class_weights": list(self.class_weights) if self.class_weights
                else None, "weighting": self.weighting}


def class_weights(y_train: np.ndarray, rule: str, imbalance_below: float) -> tuple[tuple[float, float] | None, str]:
    """(weights of class 0 and class 1, or None; why) from the training labels."""
    if rule not in CLASS_WEIGHTS:
        raise ValueError(f"class_weight {rule!r} must be one of {', '.join(CLASS_WEIGHTS)}")
    n, pos = len(y_train), int(np.sum(y_train))
    counts = (n - pos, pos)
    minority = min(counts) / n if n else 0.0
    if rule == "none" or min(counts) == 0:
        return None, "none" if rule == "none" else "none: the training split has one class only"
    if rule == "auto" and minority >= imbalance_below:
        return None, f"none: minority share {minority:.3f} >= {imbalance_below:g}"
    weights = tuple(round(n / (2 * c), 6) for c in counts)
    return weights, f"balanced: minority share {minority:.3f}" + (f" < {imbalance_below:g}" if rule == "auto" else "")


def schedule(hp: dict, n_train: int, y_train: np.ndarray) -> Schedule:
    """The schedule HP asks for on N_TRAIN rows with labels Y_TRAIN."""
    batches = max(1, math.ceil(n_train / int(hp["batch_size"])))
    if hp.get("epochs") is not None:
        epochs, rule = int(hp["epochs"]), "fixed (epochs)"
    else:
        budget, lo, hi = int(hp["step_budget"]), int(hp["min_epochs"]), int(hp["max_epochs"])
        epochs = min(hi, max(lo, math.ceil(budget / batches)))
        rule = f"{budget} steps / {batches} batches per epoch, within [{lo}, {hi}]"
    weights, why = class_weights(y_train, hp.get("class_weight", "none"), float(hp.get("imbalance_below", 0.5)))
    return Schedule(epochs, rule, int(hp.get("patience") or 0), float(hp.get("min_delta", 0.0)), weights, why)


class EarlyStopping:
    """Tracks the best validation loss; says when PATIENCE epochs passed without an improvement."""

    def __init__(self, patience: int, min_delta: float):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.best_epoch, self.stopped_at = math.inf, 0, None

    def improved(self, epoch: int, loss: float) -> bool:
        if loss < self.best - self.min_delta:
            self.best, self.best_epoch = loss, epoch
            return True
        return False

    def should_stop(self, epoch: int) -> bool:
        if self.patience and epoch - self.best_epoch >= self.patience:
            self.stopped_at = epoch
            return True
        return False
