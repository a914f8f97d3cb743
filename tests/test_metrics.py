import numpy as np
import pytest
import torch

from clipbook import metrics


def test_accuracy_from_logits_and_from_labels():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [0.0, 1.0]])
    labels = [0, 1, 1, 1]
    assert metrics.accuracy(logits, labels) == 75.0
    assert metrics.accuracy(np.array([0, 1, 0, 1]), labels) == 75.0
    with pytest.raises(ValueError):
        metrics.accuracy(np.array([0, 1]), labels)


def test_group_and_worst_group_accuracy():
    predictions = np.array([0, 0, 1, 1, 0, 1])
    labels = np.array([0, 0, 1, 0, 1, 1])
    groups = np.array(["a", "a", "a", "b", "b", "b"])
    assert metrics.group_accuracies(predictions, labels, groups) == {"a": 100.0, "b": pytest.approx(100 / 3)}
    assert metrics.worst_group_accuracy(predictions, labels, groups) == pytest.approx(100 / 3)


def test_mean_per_class_recall_weights_classes_equally():
    predictions = np.array([0, 0, 0, 0, 1])
    labels = np.array([0, 0, 0, 1, 1])
    assert metrics.mean_per_class_recall(predictions, labels) == 75.0


def test_top_k_accuracy_counts_the_label_among_the_k_best():
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.02, 0.08], [0.2, 0.3, 0.5]])
    labels = torch.tensor([2, 1, 0])
    assert metrics.top_k_accuracy(scores, labels, 1) == 0.0
    assert metrics.top_k_accuracy(scores, labels, 2) == pytest.approx(100 / 3)  # only row 0
    assert metrics.top_k_accuracy(scores, labels, 3) == 100.0
    with pytest.raises(ValueError, match="k=4"):
        metrics.top_k_accuracy(scores, labels, 4)
