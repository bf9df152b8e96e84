"""Reproducible torch training: fixed seeds, deterministic kernels, pinned threads, digested weights."""

from __future__ import annotations

import hashlib
import platform
import time
from dataclasses import dataclass, field

import numpy as np

from z4_assets.core.training._monitor import TrainingDiverged


@dataclass
class TrainResult:
    model: object
    history: list[dict]
    best_epoch: int
    digest: str
    seconds: float
    schedule: dict = field(default_factory=dict)   # epoch budget, early stopping, class weights


def build_mlp(n_inputs: int, hidden: list[int]):
    import torch.nn as nn

    layers, width = [], n_inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 2))  # two logits, so ART and argmax read it correctly
    return nn.Sequential(*layers)


def determinism(seed: int, threads: int) -> dict:
    """Fix every source of nondeterminism we control; returns what was set, for the record."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    return {"seed": seed, "threads": threads, "deterministic_algorithms": True,
            "torch": torch.__version__, "machine": platform.machine()}


def state_dict_digest(model) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in key order."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        arr = t.detach().cpu().contiguous().numpy()
        h.update(f"{name}|{arr.dtype}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def predict_proba(model, x: np.ndarray, batch: int = 65536) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(torch.from_numpy(x[i:i + batch]))
            out.append(torch.softmax(logits, dim=1)[:, 1].numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    flagged, pos = p >= 0.5, y == 1
    tpr_at, tnr_at = (float(flagged[pos].mean()) if pos.any() else float("nan"),
                      float((~flagged[~pos]).mean()) if (~pos).any() else float("nan"))
    return {
        "auc": float(roc_auc_score(y, p)),
        "ks": float(np.max(tpr - fpr)),
        "accuracy": float(((p >= 0.5) == y).mean()),
        "log_loss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "positive_rate": float(y.mean()),
        "selection_rate": float(flagged.mean()),           # at the decision boundary 0.5
        "tpr": tpr_at, "tnr": tnr_at, "balanced_accuracy": (tpr_at + tnr_at) / 2,
        "rows": int(len(y)),
    }


def train_mlp(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
              hp: dict, monitor=None) -> TrainResult:
    """Mini-batch Adam on two logits, to convergence (core/training/_schedule.py): an epoch budget
    scaled to the data, class weighting for an imbalanced target, early stopping on the validation
    loss with a patience; keeps the best epoch (lowest validation loss; without early stopping, the
    highest validation AUC, as before).

    monitor: a core.training_monitor.TrainingMonitor that gets each epoch's loss, validation AUC,
    learning rate, time, peak RSS and gradient norms, and raises TrainingDiverged on a NaN/inf
    loss. It only reads: the weights are the same with or without it.
    """
    import torch

    from z4_assets.core.training._schedule import EarlyStopping, schedule

    start = time.perf_counter()
    determinism(int(hp["seed"]), int(hp["threads"]))
    plan = schedule(hp, len(x_train), y_train)
    model = build_mlp(x_train.shape[1], list(hp["hidden_sizes"]))
    opt = torch.optim.Adam(model.parameters(), lr=hp["learning_rate"], weight_decay=hp["weight_decay"])
    weight = torch.tensor(plan.class_weights, dtype=torch.float32) if plan.class_weights else None
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    gen = torch.Generator().manual_seed(int(hp["seed"]))
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train.astype(np.int64))
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(y_val.astype(np.int64))
    stopper = EarlyStopping(plan.patience, plan.min_delta)
    best, best_state, best_epoch, history = -1.0, None, 0, []
    epochs = plan.epochs
    for epoch in range(1, epochs + 1):
        t_epoch = time.perf_counter()
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        total, grad_norms = 0.0, []
        for i in range(0, len(order), int(hp["batch_size"])):
            idx = order[i:i + int(hp["batch_size"])]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            if monitor is not None:
                grad_norms.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()
                                             if p.grad is not None]).norm())  # L2 over all parameters
            opt.step()
            total += float(loss.detach()) * len(idx)
        if not np.isfinite(total):  # the model is unusable: stop here, naming the epoch
            if monitor is not None:  # records the epoch, then raises
                _report(monitor, epoch, epochs, total / len(xt), None, opt, t_epoch, len(xt), grad_norms)
            raise TrainingDiverged(epoch, epochs, total / len(xt))
        val = binary_metrics(y_val, predict_proba(model, x_val))
        val_loss = _loss(model, loss_fn, xv, yv)
        if monitor is not None:
            _report(monitor, epoch, epochs, total / len(xt), val["auc"], opt, t_epoch, len(xt), grad_norms)
        history.append({"epoch": epoch, "train_loss": total / len(xt), "val_auc": val["auc"], "val_loss": val_loss})
        better = stopper.improved(epoch, val_loss) if plan.patience else val["auc"] > best
        if better:
            best = val["auc"]
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
            best_epoch = epoch
        if stopper.should_stop(epoch):
            break
    if best_state is not None:  # None: no epoch had a finite validation loss; the last one stays
        model.load_state_dict(best_state)
    return TrainResult(model, history, best_epoch, state_dict_digest(model),
                       time.perf_counter() - start, plan.as_dict() | {"stopped_early_at": stopper.stopped_at})


def _loss(model, loss_fn, x, y) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return float(loss_fn(model(x), y)) if len(x) else float("nan")


def _report(monitor, epoch: int, epochs: int, loss: float, val_auc: float | None, opt, t_epoch: float,
            rows: int, grad_norms: list) -> None:
    from z4_assets.core.cost import peak_rss_kib

    norms = np.array([float(g) for g in grad_norms]) if grad_norms else np.zeros(1)
    monitor.epoch(epoch=epoch, epochs=epochs, train_loss=float(loss), val_auc=val_auc,
                  learning_rate=float(opt.param_groups[0]["lr"]), seconds=time.perf_counter() - t_epoch,
                  rows=rows, peak_rss_kib=peak_rss_kib(),
                  grad_norm_max=float(norms.max()), grad_norm_mean=float(norms.mean()))
