"""Robustness metrics beyond accuracy: calibration, out-of-distribution detection and shape bias.

    probabilities = torch.softmax(logits, dim=1)
    expected_calibration_error(probabilities, labels)            # ECE, 15 equal-width bins (Guo et al. 2017)
    reliability_bins(probabilities, labels)                      # the reliability diagram's bins
    temperature = fit_temperature(val_logits, val_labels)        # temperature scaling (Guo et al. 2017, §4.2)
    ood_auroc(msp_score(in_logits), msp_score(out_logits))       # ID positive, higher score = more in-distribution
    fpr_at_tpr(mcm_score(in_cosines), mcm_score(out_cosines))    # FPR@95: OOD accepted when 95 % of ID is
    shape_bias(predictions, shape_labels, cue_labels)            # Geirhos et al. 2019: shape / (shape + cue)

Worst-group accuracy lives in `clipbook.metrics` (shared with the group-robustness notebooks). Calibration and
OOD metrics return fractions in [0, 1] (ECE is often quoted in percent: multiply by 100 where a table does).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def _as_tensor(values, dtype=torch.float64) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().to(dtype)
    return torch.as_tensor(np.asarray(values), dtype=dtype)


def _confidences(probabilities, labels) -> tuple[torch.Tensor, torch.Tensor]:
    probabilities, labels = _as_tensor(probabilities), _as_tensor(labels, torch.int64)
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise ValueError(f"probabilities must be (N, K) for N labels; got {tuple(probabilities.shape)} and "
                         f"{len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("no samples")
    if (probabilities < 0).any() or not torch.allclose(probabilities.sum(1), torch.ones(len(probabilities),
                                                                                      dtype=torch.float64),
                                                       atol=1e-4):
        raise ValueError("probabilities must be non-negative rows summing to 1 (apply a softmax to logits first)")
    confidence, prediction = probabilities.max(dim=1)
    return confidence, (prediction == labels).to(torch.float64)


def reliability_bins(probabilities, labels, n_bins: int = 15) -> pd.DataFrame:
    """The bins of a reliability diagram: equal-width confidence bins (lower, upper], each with its count, the
    accuracy of its predictions and their mean confidence (NaN for an empty bin).

    Args:
        probabilities: (N, K) class probabilities (softmax of logits).
        labels: (N,) true labels.
        n_bins: number of equal-width bins on [0, 1] (15, as Guo et al. 2017 and most ECE tables).

    Returns:
        One row per bin: lower, upper, count, accuracy, confidence.
    """
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    confidence, correct = _confidences(probabilities, labels)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    # bin b holds confidences in (edges[b], edges[b + 1]]; a confidence of exactly 0 cannot occur (max of K >= 1
    # probabilities summing to 1), and is put in the first bin all the same
    index = (torch.searchsorted(edges, confidence, right=False) - 1).clamp(0, n_bins - 1)
    count = torch.bincount(index, minlength=n_bins).to(torch.float64)
    accuracy = torch.bincount(index, weights=correct, minlength=n_bins) / count
    mean_confidence = torch.bincount(index, weights=confidence, minlength=n_bins) / count
    return pd.DataFrame({"lower": edges[:-1].numpy(), "upper": edges[1:].numpy(), "count": count.numpy().astype(int),
                         "accuracy": accuracy.numpy(), "confidence": mean_confidence.numpy()})


def expected_calibration_error(probabilities, labels, n_bins: int = 15) -> float:
    """Expected calibration error (Naeini et al. 2015; Guo et al. 2017, eq. 3): the bin-weighted mean gap between
    accuracy and confidence, sum_b |B_b| / N * |acc(B_b) - conf(B_b)|, over `n_bins` equal-width bins.

    Args:
        probabilities: (N, K) class probabilities.
        labels: (N,) true labels.
        n_bins: number of bins (15 by default).

    Returns:
        ECE as a fraction in [0, 1].
    """
    bins = reliability_bins(probabilities, labels, n_bins)
    filled = bins[bins["count"] > 0]
    return float((filled["count"] * (filled["accuracy"] - filled["confidence"]).abs()).sum() / filled["count"].sum())


def fit_temperature(logits, labels, *, max_iter: int = 200) -> float:
    """Temperature scaling (Guo et al. 2017, §4.2): the T > 0 minimising the negative log-likelihood of
    softmax(logits / T) on held-out (logits, labels). Optimised over log T with L-BFGS, so T stays positive.

    Returns:
        The temperature T (divide logits by it).
    """
    logits, labels = _as_tensor(logits), _as_tensor(labels, torch.int64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def msp_score(logits) -> np.ndarray:
    """Maximum softmax probability (Hendrycks & Gimpel 2017): higher means more in-distribution."""
    return torch.softmax(_as_tensor(logits), dim=1).max(dim=1).values.numpy()


def mcm_score(cosines, temperature: float = 1.0) -> np.ndarray:
    """Maximum concept matching (Ming et al. 2022, eq. 2): max_i softmax_i(s_i / tau) over the cosine similarities
    s_i between an image and the class prompts, tau = 1 by default (their choice for CLIP)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return torch.softmax(_as_tensor(cosines) / temperature, dim=1).max(dim=1).values.numpy()


def _scores(scores_in, scores_out) -> tuple[np.ndarray, np.ndarray]:
    scores_in, scores_out = np.asarray(scores_in, dtype=np.float64), np.asarray(scores_out, dtype=np.float64)
    if scores_in.ndim != 1 or scores_out.ndim != 1 or not len(scores_in) or not len(scores_out):
        raise ValueError("scores_in and scores_out must be non-empty 1-D arrays")
    return scores_in, scores_out


def ood_auroc(scores_in, scores_out) -> float:
    """Area under the ROC curve of telling in-distribution (positive) from OOD samples by their score: the
    probability that a random ID sample scores above a random OOD one, ties counting one half (Mann-Whitney U)."""
    scores_in, scores_out = _scores(scores_in, scores_out)
    both = np.concatenate([scores_in, scores_out])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both))
    sorted_scores = both[order]
    # average ranks over ties
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(both)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    n_in, n_out = len(scores_in), len(scores_out)
    u = ranks[:n_in].sum() - n_in * (n_in + 1) / 2
    return float(u / (n_in * n_out))


def fpr_at_tpr(scores_in, scores_out, tpr: float = 0.95) -> float:
    """False-positive rate at a true-positive rate of `tpr` (FPR@95 for 0.95): the fraction of OOD samples
    accepted by the highest threshold that still accepts at least `tpr` of the in-distribution samples
    (a sample is accepted when its score >= the threshold)."""
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    scores_in, scores_out = _scores(scores_in, scores_out)
    descending = np.sort(scores_in)[::-1]
    threshold = descending[int(np.ceil(tpr * len(descending))) - 1]
    return float((scores_out >= threshold).mean())


def shape_bias(predictions, shape_labels, cue_labels) -> float:
    """Shape bias on cue-conflict images (Geirhos et al. 2019): among the decisions that name either the shape's
    class or the cue's class, the fraction naming the shape, #shape / (#shape + #cue). Images whose shape and cue
    classes agree are left out, as in model-vs-human. NaN when no decision names either.

    Args:
        predictions: (N,) predicted labels, or (N, K) scores (argmax taken).
        shape_labels, cue_labels: (N,) the class of each image's shape and of its cue.
    """
    predictions = _as_tensor(predictions)
    predictions = (predictions.argmax(dim=1) if predictions.ndim == 2 else predictions).numpy().astype(np.int64)
    shape_labels, cue_labels = np.asarray(shape_labels), np.asarray(cue_labels)
    if not len(predictions) == len(shape_labels) == len(cue_labels):
        raise ValueError(f"{len(predictions)} predictions, {len(shape_labels)} shape labels and "
                         f"{len(cue_labels)} cue labels")
    conflict = shape_labels != cue_labels
    shape = int((predictions[conflict] == shape_labels[conflict]).sum())
    cue = int((predictions[conflict] == cue_labels[conflict]).sum())
    return shape / (shape + cue) if shape + cue else float("nan")
