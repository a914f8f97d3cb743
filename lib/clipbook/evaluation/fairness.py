"""Subgroup AUC and adjusted AUPRC with bootstrap intervals, as in a fairness audit of medical classifiers.

Follows Sourget et al., "Fairness and Robustness of CLIP-Based Models for Chest X-rays" (arXiv 2507.21291), code
github.com/TheoSourget/clip_cxr_fairness, `evaluate_performance.py`:

- AUC (`sklearn.metrics.roc_auc_score`) and the *adjusted AUPRC* (`adjusted_auprc`):
  1 − log(AUPRC) / log(prevalence), with AUPRC sklearn's average precision. It is 0 for a classifier at chance
  (AUPRC = prevalence) and 1 for a perfect one, so it compares across groups of different prevalence;
- a 95% percentile interval from 1000 bootstrap resamples of the images (`bootstrap_interval`), numpy's legacy
  generator seeded with 1907; resamples without a positive are skipped, as there;
- computed globally, per subgroup (`subgroup_masks`: every image of the subgroup, positives and negatives) and,
  for a shortcut marker such as a chest drain, on the paper's two subsets (`marker_masks`): positives without
  the marker plus all negatives, and positives with it plus all negatives.

The bootstrap is vectorised (each resample is a vector of integer weights over the images; AUC and average
precision are computed for all resamples at once from one sort), so a thousand resamples cost about as much as
a few sklearn calls; `tests/evaluation/test_fairness.py` checks it against sklearn on every resample. Worst-group
accuracy lives in `clipbook.metrics.worst_group_accuracy`.

    table = metric_table(labels, scores, {**marker_masks(labels, drain), **subgroup_masks("sex", sex)})
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

BOOTSTRAP_SEED = 1907      # evaluate_performance.py: np.random.seed(1907)
BOOTSTRAP_SAMPLES = 1000   # evaluate_performance.py: bootstrap(..., nb_selection=1000)
CONFIDENCE = 0.95          # evaluate_performance.py: alpha = 5.0, percentiles 2.5 and 97.5
METRICS = ("AUC", "adjusted AUPRC")


def _binary(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    if labels.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(f"labels and scores must be 1-D of one length, got {labels.shape} and {scores.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, got values {sorted(set(labels.tolist()))[:5]}")
    return labels.astype(int), scores


def adjusted_auprc(labels, scores) -> float:
    """1 − log(AUPRC) / log(prevalence) (evaluate_performance.py, `adjusted_auprc`).

    Args:
        labels: 0/1 per image.
        scores: the classifier's score per image (higher: more likely positive).

    Returns:
        0 at chance, 1 for a perfect ranking, negative below chance.
    """
    labels, scores = _binary(labels, scores)
    prevalence = labels.mean()
    if not 0 < prevalence < 1:
        raise ValueError(f"adjusted AUPRC needs positives and negatives; prevalence is {prevalence}")
    return float(1 - np.log(average_precision_score(labels, scores)) / np.log(prevalence))


def auc(labels, scores) -> float:
    """Area under the ROC curve (sklearn's `roc_auc_score`), the paper's main metric."""
    labels, scores = _binary(labels, scores)
    return float(roc_auc_score(labels, scores))


POINT_ESTIMATES: dict[str, Callable] = {"AUC": auc, "adjusted AUPRC": adjusted_auprc}


def _resample_weights(n: int, samples: int, generator: np.random.RandomState) -> np.ndarray:
    """(samples, n) counts: how often each image is drawn in each resample. Draws as the paper's code does, one
    `randint(0, n, n)` per resample from numpy's legacy generator, so a shared generator gives its stream."""
    draws = np.stack([generator.randint(0, n, n) for _ in range(samples)]) if samples else np.zeros((0, n), int)
    flat = (draws + np.arange(samples)[:, None] * n).ravel()
    return np.bincount(flat, minlength=samples * n).reshape(samples, n).astype(float)


def _weighted_curves(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray):
    """Per resample, the weight of positives and of negatives at each distinct score, highest score first."""
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    starts = np.concatenate([[0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1])  # one run per distinct score
    weights = weights[:, order]
    positive = np.add.reduceat(weights * labels[order][None, :], starts, axis=1)
    negative = np.add.reduceat(weights * (1 - labels[order])[None, :], starts, axis=1)
    return positive, negative


def weighted_auc(labels, scores, weights) -> np.ndarray:
    """AUC of each row of `weights` (k, n): the images counted with those (integer) weights, as a bootstrap
    resample counts them. Ties count one half (Mann-Whitney), as `roc_auc_score` does."""
    labels, scores = _binary(labels, scores)
    positive, negative = _weighted_curves(labels, scores, np.atleast_2d(weights))
    # scores run from highest to lowest: negatives ranked below a positive are those after it
    below = negative.sum(axis=1, keepdims=True) - np.cumsum(negative, axis=1)
    pairs = positive.sum(axis=1) * negative.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (positive * (below + 0.5 * negative)).sum(axis=1) / pairs


def weighted_average_precision(labels, scores, weights) -> np.ndarray:
    """Average precision (sklearn's step-wise AUPRC, thresholds at the distinct scores) of each row of
    `weights` (k, n)."""
    labels, scores = _binary(labels, scores)
    positive, negative = _weighted_curves(labels, scores, np.atleast_2d(weights))
    true_positives, false_positives = np.cumsum(positive, axis=1), np.cumsum(negative, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(true_positives / (true_positives + false_positives))
        return (positive * precision).sum(axis=1) / positive.sum(axis=1)


def weighted_adjusted_auprc(labels, scores, weights) -> np.ndarray:
    """`adjusted_auprc` of each row of `weights`, the prevalence being that of the weighted images."""
    labels = np.asarray(labels)
    weights = np.atleast_2d(weights)
    prevalence = (weights * labels[None, :]).sum(axis=1) / weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1 - np.log(weighted_average_precision(labels, scores, weights)) / np.log(prevalence)


RESAMPLED: dict[str, Callable] = {"AUC": weighted_auc, "adjusted AUPRC": weighted_adjusted_auprc}


def _generator(seed) -> np.random.RandomState:
    if isinstance(seed, np.random.RandomState):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or a numpy RandomState, got {seed!r}")
    return np.random.RandomState(int(seed))


def bootstrap_values(labels, scores, metric: str = "AUC", *, samples: int = BOOTSTRAP_SAMPLES,
                     seed=BOOTSTRAP_SEED) -> np.ndarray:
    """The metric on each bootstrap resample that has a positive and a negative (evaluate_performance.py,
    `bootstrap`: it skips resamples without a positive; one without a negative has no AUC either).

    Args:
        labels, scores: as for `auc`.
        metric: one of `METRICS`.
        samples: number of resamples drawn.
        seed: an int (a fresh `np.random.RandomState(seed)`, so the interval does not depend on what was computed
            before it) or a RandomState to draw from (the paper's code draws every interval from one global
            stream seeded once; pass one generator to every call, in its order, to reproduce that).

    Returns:
        The metric's values, one per kept resample, in draw order.
    """
    if metric not in RESAMPLED:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    labels, scores = _binary(labels, scores)
    weights = _resample_weights(len(labels), samples, _generator(seed))
    positives = weights @ labels
    kept = weights[(positives > 0) & (positives < weights.sum(axis=1))]
    return RESAMPLED[metric](labels, scores, kept) if len(kept) else np.zeros(0)


def bootstrap_interval(labels, scores, metric: str = "AUC", *, samples: int = BOOTSTRAP_SAMPLES,
                       seed=BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile interval of `bootstrap_values` (numpy's default linear percentiles, as the paper's code)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    values = bootstrap_values(labels, scores, metric, samples=samples, seed=seed)
    if not len(values):
        return float("nan"), float("nan")
    alpha = (1 - confidence) * 100
    low, high = np.percentile(values, [alpha / 2, 100 - alpha / 2])
    return float(low), float(high)


def subgroup_masks(attribute: str, values, order=None) -> dict[str, np.ndarray]:
    """{"<attribute>=<value>": mask} for every value of a per-image attribute (in `order` if given, else sorted):
    the subgroup's images, positives and negatives alike (evaluate_performance.py, MIMIC branch)."""
    values = np.asarray(values).astype(str)
    order = sorted(set(values.tolist())) if order is None else [str(v) for v in order if str(v) in set(values)]
    return {f"{attribute}={value}": values == value for value in order}


def marker_masks(labels, marker, name: str = "marker") -> dict[str, np.ndarray]:
    """The paper's two shortcut subsets (evaluate_performance.py, CXR14 branch): positives without the marker
    plus every negative ("<name>=0"), positives with it plus every negative ("<name>=1"). Negatives keep their
    own marker either way, so the two subsets differ only in which positives they hold."""
    labels, marker = np.asarray(labels).astype(int), np.asarray(marker).astype(int)
    if labels.shape != marker.shape:
        raise ValueError(f"labels {labels.shape} and marker {marker.shape} differ in length")
    return {f"{name}=0": (labels == 0) | (marker == 0), f"{name}=1": (labels == 0) | (marker == 1)}


def metric_table(labels, scores, masks: Mapping[str, np.ndarray] | None = None, *,
                 metrics: tuple[str, ...] = METRICS, samples: int = BOOTSTRAP_SAMPLES, seed=BOOTSTRAP_SEED,
                 confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Each metric with its bootstrap interval, on all images ("global") and on each mask.

    Args:
        labels, scores: as for `auc`.
        masks: {group name: boolean mask over the images} (`subgroup_masks`, `marker_masks`).
        metrics: names from `METRICS`.
        samples, seed, confidence: as for `bootstrap_interval`; an int seed restarts the generator for every
            (group, metric), so each interval is reproducible on its own.

    Returns:
        One row per (group, metric): group, metric, value, low, high, images, positives, prevalence. A group
        without both classes gets NaN values.
    """
    labels, scores = _binary(labels, scores)
    unknown = [m for m in metrics if m not in POINT_ESTIMATES]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {', '.join(METRICS)}")
    groups = {"global": np.ones(len(labels), bool), **dict(masks or {})}
    rows = []
    for group, mask in groups.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != labels.shape:
            raise ValueError(f"mask {group!r} has shape {mask.shape}, expected {labels.shape}")
        y, s = labels[mask], scores[mask]
        both = 0 < y.sum() < len(y)
        for metric in metrics:
            value = POINT_ESTIMATES[metric](y, s) if both else float("nan")
            low, high = (bootstrap_interval(y, s, metric, samples=samples, seed=seed, confidence=confidence)
                         if both else (float("nan"), float("nan")))
            rows.append({"group": group, "metric": metric, "value": value, "low": low, "high": high,
                         "images": int(len(y)), "positives": int(y.sum()),
                         "prevalence": float(y.mean()) if len(y) else float("nan")})
    return pd.DataFrame(rows)
