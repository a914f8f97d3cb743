"""Metrics shared by notebooks. Accuracies are percentages, as papers report them."""
from __future__ import annotations

import numpy as np
import torch


def _predictions(scores) -> np.ndarray:
    scores = scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    return scores.argmax(axis=1) if scores.ndim == 2 else scores


def _as_numpy(values) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def accuracy(scores, labels) -> float:
    """Top-1 accuracy (%) from logits (N, K) or predicted labels (N,)."""
    predictions, labels = _predictions(scores), _as_numpy(labels)
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    return float((predictions == labels).mean() * 100)


def top_k_accuracy(scores, labels, k: int) -> float:
    """Top-k accuracy (%) from logits (N, K): the label is among the k highest scores. Softmax-free, since
    a softmax ranks classes the same."""
    scores, labels = torch.as_tensor(_as_numpy(scores)), torch.as_tensor(_as_numpy(labels))
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the number of classes {scores.shape[1]}")
    return float((scores.topk(k, dim=1).indices == labels[:, None]).any(dim=1).double().mean() * 100)


def mean_per_class_recall(scores, labels) -> float:
    predictions, labels = _predictions(scores), _as_numpy(labels)
    return float(np.mean([(predictions[labels == c] == c).mean() for c in np.unique(labels)]) * 100)


def group_accuracies(scores, labels, groups) -> dict:
    """Accuracy (%) per group label, for average/worst-group reporting (Waterbirds, CelebA style)."""
    predictions, labels, groups = _predictions(scores), _as_numpy(labels), _as_numpy(groups)
    return {g: float((predictions[groups == g] == labels[groups == g]).mean() * 100) for g in np.unique(groups)}


def worst_group_accuracy(scores, labels, groups) -> float:
    return min(group_accuracies(scores, labels, groups).values())
