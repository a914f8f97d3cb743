import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from clipbook.evaluation import robustness


def _random_case(seed=0, n=2000, k=7):
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, k, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, k, (n,), generator=generator)
    labels[: n // 2] = logits[: n // 2].argmax(1)  # half the predictions right, so bins are uneven
    return torch.softmax(logits, 1), labels, logits


def _ece_loop(probabilities, labels, n_bins):
    """Reference: Guo et al.'s binning written as a plain loop over samples."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    totals = [[0, 0.0, 0.0] for _ in range(n_bins)]
    for row, label in zip(probabilities, labels):
        confidence = row.max()
        for b in range(n_bins):
            if b / n_bins < confidence <= (b + 1) / n_bins:
                totals[b][0] += 1
                totals[b][1] += float(row.argmax() == label)
                totals[b][2] += confidence
    n = len(labels)
    return sum(count / n * abs(correct / count - conf / count) for count, correct, conf in totals if count)


@pytest.mark.parametrize("n_bins", [15, 10, 1])
def test_ece_matches_a_plain_loop(n_bins):
    probabilities, labels, _ = _random_case()
    assert robustness.expected_calibration_error(probabilities, labels, n_bins) == pytest.approx(
        _ece_loop(probabilities, labels, n_bins), abs=1e-12)


def test_ece_matches_torchmetrics_if_installed():
    torchmetrics = pytest.importorskip("torchmetrics")
    probabilities, labels, _ = _random_case(seed=3)
    metric = torchmetrics.classification.MulticlassCalibrationError(num_classes=7, n_bins=15, norm="l1")
    reference = float(metric(probabilities.float(), labels))
    assert robustness.expected_calibration_error(probabilities, labels) == pytest.approx(reference, abs=1e-5)


def test_ece_analytic_cases():
    # every prediction right with confidence 1: perfectly calibrated
    assert robustness.expected_calibration_error(torch.eye(4), torch.arange(4)) == 0
    # confidence 0.8 everywhere, 3 of 5 right: ECE = |0.6 - 0.8| = 0.2
    probabilities = torch.tensor([[0.8, 0.2]] * 5)
    assert robustness.expected_calibration_error(probabilities, [0, 0, 0, 1, 1]) == pytest.approx(0.2)


def test_reliability_bins():
    probabilities, labels, _ = _random_case()
    bins = robustness.reliability_bins(probabilities, labels)
    assert len(bins) == 15 and bins["count"].sum() == len(labels)
    filled = bins[bins["count"] > 0]
    assert ((filled["confidence"] > filled["lower"]) & (filled["confidence"] <= filled["upper"])).all()
    with pytest.raises(ValueError, match="softmax"):
        robustness.reliability_bins(torch.ones(3, 2), [0, 1, 0])


def test_temperature_scaling_recovers_a_known_temperature():
    # labels drawn from softmax(z), logits shown as 3 z: the NLL-optimal temperature is close to 3
    generator = torch.Generator().manual_seed(0)
    z = 2 * torch.randn(20000, 5, generator=generator, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(z, 1), 1, generator=generator).squeeze(1)
    assert robustness.fit_temperature(3 * z, labels) == pytest.approx(3.0, rel=0.05)


@pytest.mark.parametrize("seed", [0, 1])
def test_auroc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores_in = np.round(rng.normal(1, 1, 300), 1)  # rounded: many ties
    scores_out = np.round(rng.normal(0, 1, 500), 1)
    reference = roc_auc_score(np.r_[np.ones(300), np.zeros(500)], np.r_[scores_in, scores_out])
    assert robustness.ood_auroc(scores_in, scores_out) == pytest.approx(reference, abs=1e-12)


def test_auroc_and_fpr_analytic_cases():
    assert robustness.ood_auroc([2, 3], [0, 1]) == 1.0
    assert robustness.ood_auroc([0, 1], [2, 3]) == 0.0
    assert robustness.ood_auroc([1, 1], [1, 1]) == 0.5
    assert robustness.fpr_at_tpr([2, 3], [0, 1]) == 0.0
    assert robustness.fpr_at_tpr(np.arange(100), [50.5, 5, 4.5]) == pytest.approx(2 / 3)  # threshold 5


def test_fpr_at_95_matches_the_roc_curve():
    rng = np.random.default_rng(2)
    scores_in, scores_out = rng.normal(1, 1, 1000), rng.normal(0, 1, 1000)
    fpr, tpr, _ = roc_curve(np.r_[np.ones(1000), np.zeros(1000)], np.r_[scores_in, scores_out])
    reference = fpr[np.searchsorted(tpr, 0.95, side="left")]  # first ROC point with TPR >= 0.95
    assert robustness.fpr_at_tpr(scores_in, scores_out) == pytest.approx(reference)


def test_msp_and_mcm_scores():
    logits = torch.tensor([[10.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(robustness.msp_score(logits), [1 / (1 + np.exp(-10)), 0.5])
    cosines = torch.tensor([[0.3, 0.1]])
    np.testing.assert_allclose(robustness.mcm_score(cosines, 0.1), [1 / (1 + np.exp(-2))])
    with pytest.raises(ValueError, match="temperature"):
        robustness.mcm_score(cosines, 0)


def test_shape_bias():
    shape, cue = np.array([0, 1, 2, 3]), np.array([1, 2, 3, 0])
    assert robustness.shape_bias(shape, shape, cue) == 1.0
    assert robustness.shape_bias(cue, shape, cue) == 0.0
    # one shape, one cue, one neither decision; a non-conflict image is ignored
    assert robustness.shape_bias([0, 2, 9, 4], [0, 1, 2, 4], [1, 2, 3, 4]) == 0.5
    scores = torch.nn.functional.one_hot(torch.tensor([0, 2, 1, 0]), 4).float()
    assert robustness.shape_bias(scores, shape, cue) == pytest.approx(1 / 3)  # shape, cue, neither, cue
    assert np.isnan(robustness.shape_bias([5, 5], [0, 1], [1, 0]))
    with pytest.raises(ValueError, match="predictions"):
        robustness.shape_bias([0], [0, 1], [1, 0])
