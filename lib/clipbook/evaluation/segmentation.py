"""Semantic segmentation metrics with mmsegmentation's definitions, as the open-vocabulary segmentation papers report them.

mmseg (`mmseg/evaluation/metrics/iou_metric.py`, `IoUMetric`) accumulates four per-class pixel histograms over the
whole dataset — intersection, union, prediction and ground-truth areas — and only then divides:

    IoU_c = Σ_images |P_c ∩ G_c| / Σ_images |P_c ∪ G_c|,    mIoU = nanmean_c IoU_c,
    aAcc = Σ_c |P_c ∩ G_c| / Σ_c |G_c|,                     mAcc = nanmean_c |P_c ∩ G_c| / |G_c|.

So mIoU is not a mean of per-image IoUs, and a class absent from both the labels and the predictions of the whole
dataset has union 0, IoU NaN, and is left out of the mean. Pixels whose label is `ignore_index` (255 in every
mmseg config) are dropped before counting, whatever was predicted there; predictions outside 0..C-1 count in no
class's prediction area (mmseg's `torch.histc` drops them) but still miss their label's class.

Background follows the benchmark: VOC21 / Context60 have a "background" class at index 0, which is a class like
any other here; VOC20 / Context59 label it `ignore_index`. `reduce_zero_label` (ADE20k-style labels whose 0 means
"other") is the dataset's business in mmseg (`LoadAnnotations`) and here: `reduce_zero_label(label)`.

tests/evaluation/test_segmentation.py checks the accumulator against a per-pixel brute-force count, and against
torchmetrics' `MulticlassJaccardIndex` when it is installed.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

IGNORE_INDEX = 255


def intersect_and_union(prediction, label, num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Per-class pixel areas of one (H, W) map (or any stack of maps): rows intersect, union, prediction, label.

    mmseg `IoUMetric.intersect_and_union`. Returns a (4, num_classes) int64 array.
    """
    prediction = torch.as_tensor(np.asarray(prediction)).long()
    label = torch.as_tensor(np.asarray(label)).long()
    if prediction.shape != label.shape:
        raise ValueError(f"prediction and label must have the same shape; got {tuple(prediction.shape)} and "
                         f"{tuple(label.shape)}")
    keep = label != ignore_index
    prediction, label = prediction[keep], label[keep]
    if len(label) and (label.min() < 0 or label.max() >= num_classes):
        raise ValueError(f"labels must be 0..{num_classes - 1} or ignore_index={ignore_index}; got "
                         f"{int(label.min())}..{int(label.max())}")

    def area(values: torch.Tensor) -> torch.Tensor:  # histc over 0..C-1 drops values outside it, as mmseg's does
        inside = values[(values >= 0) & (values < num_classes)]
        return torch.bincount(inside, minlength=num_classes)

    intersect = area(prediction[prediction == label])
    predicted, labelled = area(prediction), area(label)
    return torch.stack([intersect, predicted + labelled - intersect, predicted, labelled]).numpy()


class IoUAccumulator:
    """Dataset-level mIoU: `update` per image (or batch of maps), `compute` once, as mmseg's IoUMetric."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.areas = np.zeros((4, num_classes), np.int64)

    def update(self, prediction, label) -> None:
        self.areas += intersect_and_union(prediction, label, self.num_classes, self.ignore_index)

    def compute(self) -> dict:
        """{'aAcc', 'mIoU', 'mAcc'} in percent, plus per-class 'IoU' and 'Acc' arrays (NaN where undefined)."""
        intersect, union, _, labelled = self.areas.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou, acc = intersect / union, intersect / labelled
            all_acc = intersect.sum() / labelled.sum()
        return {"aAcc": 100 * all_acc, "mIoU": 100 * _nanmean(iou), "mAcc": 100 * _nanmean(acc),
                "IoU": 100 * iou, "Acc": 100 * acc}


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def mean_iou(predictions: Iterable, labels: Iterable, num_classes: int, ignore_index: int = IGNORE_INDEX) -> dict:
    """mmseg's metrics over paired prediction and label maps (see `IoUAccumulator.compute`)."""
    accumulator = IoUAccumulator(num_classes, ignore_index)
    for prediction, label in zip(predictions, labels, strict=True):
        accumulator.update(prediction, label)
    return accumulator.compute()


def reduce_zero_label(label, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """mmseg `LoadAnnotations(reduce_zero_label=True)`: 0 ("other") becomes ignore, every other class shifts down 1."""
    label = np.array(label, dtype=np.int64)
    out = label - 1
    out[label == 0] = ignore_index
    out[label == ignore_index] = ignore_index
    return out


def commonest_class_miou(labels: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX) -> float:
    """The mIoU of predicting the dataset's most frequent labelled class everywhere: the floor a dense method must
    beat before its mIoU says anything (its IoU is that class's pixel share; every other class scores 0)."""
    labels = np.asarray(labels)
    valid = labels[labels != ignore_index]
    if not valid.size:
        raise ValueError("no labelled pixel: the floor is undefined")
    commonest = int(np.bincount(valid.ravel(), minlength=num_classes).argmax())
    return mean_iou([np.full_like(labels, commonest)], [labels], num_classes, ignore_index)["mIoU"]
