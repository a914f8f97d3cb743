import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from clipbook.evaluation import fairness


def _scores(n=300, seed=0, prevalence=0.2, separation=1.0, ties=False):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < prevalence).astype(int)
    scores = rng.normal(size=n) + separation * labels
    return labels, (np.round(scores, 1) if ties else scores)


def _naive_bootstrap(labels, scores, metric, generator, samples):
    """The paper's loop (evaluate_performance.py, `bootstrap`) with sklearn on each resample."""
    values = []
    for _ in range(samples):
        indices = generator.randint(0, len(labels), len(labels))
        if labels[indices].sum() == 0 or labels[indices].sum() == len(labels):
            continue
        values.append(metric(labels[indices], scores[indices]))
    return np.array(values)


def _sklearn_adjusted(labels, scores):
    return 1 - np.log(average_precision_score(labels, scores)) / np.log(labels.mean())


@pytest.mark.parametrize("ties", [False, True])
def test_point_estimates_match_sklearn(ties):
    labels, scores = _scores(ties=ties)
    assert fairness.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert fairness.adjusted_auprc(labels, scores) == pytest.approx(_sklearn_adjusted(labels, scores), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_metrics_match_sklearn_on_every_resample(ties):
    labels, scores = _scores(n=120, prevalence=0.3, ties=ties)
    rng = np.random.default_rng(1)
    weights = rng.integers(0, 3, size=(25, len(labels))).astype(float)
    weights[:, labels == 1] += 1  # every resample keeps positives and negatives
    weights[:, labels == 0] += 1
    for row, expected in zip(fairness.weighted_auc(labels, scores, weights), weights):
        assert row == pytest.approx(roc_auc_score(labels, scores, sample_weight=expected), abs=1e-12)
    for row, expected in zip(fairness.weighted_average_precision(labels, scores, weights), weights):
        assert row == pytest.approx(average_precision_score(labels, scores, sample_weight=expected), abs=1e-12)


@pytest.mark.parametrize("metric, sklearn_metric", [("AUC", roc_auc_score), ("adjusted AUPRC", _sklearn_adjusted)])
def test_the_vectorised_bootstrap_is_the_papers_loop(metric, sklearn_metric):
    labels, scores = _scores(n=30, ties=True)
    labels = (np.arange(30) < 2).astype(int)  # two positives: about one resample in eight has none
    expected = _naive_bootstrap(labels, scores, sklearn_metric, np.random.RandomState(1907), 200)
    values = fairness.bootstrap_values(labels, scores, metric, samples=200, seed=1907)
    assert len(values) == len(expected) < 200  # a few resamples without a positive are skipped
    np.testing.assert_allclose(values, expected, atol=1e-12)


def test_a_shared_generator_continues_the_stream_like_the_papers_global_seed():
    labels, scores = _scores(n=60)
    shared = np.random.RandomState(1907)
    first = fairness.bootstrap_values(labels, scores, samples=50, seed=shared)
    second = fairness.bootstrap_values(labels, scores, samples=50, seed=shared)
    both = fairness.bootstrap_values(labels, scores, samples=100, seed=1907)
    np.testing.assert_array_equal(np.concatenate([first, second]), both)


def test_the_interval_contains_the_point_estimate_and_narrows_with_more_images():
    for seed in range(5):
        labels, scores = _scores(n=400, seed=seed)
        for metric in fairness.METRICS:
            low, high = fairness.bootstrap_interval(labels, scores, metric)
            value = fairness.POINT_ESTIMATES[metric](labels, scores)
            assert low <= value <= high
    small = fairness.bootstrap_interval(*_scores(n=100))
    large = fairness.bootstrap_interval(*_scores(n=3000))
    assert large[1] - large[0] < small[1] - small[0]


def test_a_chance_classifier_has_auc_one_half_and_adjusted_auprc_zero():
    labels = np.array([0, 1] * 50)
    scores = np.zeros(100)
    assert fairness.auc(labels, scores) == 0.5
    assert fairness.adjusted_auprc(labels, scores) == pytest.approx(0.0, abs=1e-12)
    assert fairness.adjusted_auprc(labels, labels.astype(float)) == pytest.approx(1.0)


def test_marker_masks_keep_every_negative_and_split_the_positives():
    labels = np.array([1, 1, 1, 0, 0, 0])
    marker = np.array([1, 0, 1, 1, 0, 0])
    masks = fairness.marker_masks(labels, marker, "drain")
    assert masks["drain=0"].tolist() == [False, True, False, True, True, True]
    assert masks["drain=1"].tolist() == [True, False, True, True, True, True]


def test_metric_table_has_a_row_per_group_and_metric():
    labels, scores = _scores(n=400)
    sex = np.where(np.arange(400) % 3 == 0, "female", "male")
    marker = (np.arange(400) % 2)
    table = fairness.metric_table(labels, scores, {**fairness.marker_masks(labels, marker),
                                                   **fairness.subgroup_masks("sex", sex)}, samples=100)
    assert list(table.group.unique()) == ["global", "marker=0", "marker=1", "sex=female", "sex=male"]
    assert len(table) == 10
    female = table[(table.group == "sex=female") & (table.metric == "AUC")].iloc[0]
    assert female.value == pytest.approx(roc_auc_score(labels[sex == "female"], scores[sex == "female"]))
    assert female.images == (sex == "female").sum()
    assert (table.low <= table.value).all() and (table.value <= table.high).all()


def test_a_group_with_one_class_gets_nan_not_an_error():
    labels, scores = _scores(n=100)
    table = fairness.metric_table(labels, scores, {"negatives": labels == 0}, samples=20)
    assert table[table.group == "negatives"].value.isna().all()


def test_bad_input_is_rejected_with_a_clear_message():
    labels, scores = _scores(n=20)
    with pytest.raises(ValueError, match="unknown metric"):
        fairness.bootstrap_interval(labels, scores, "F1")
    with pytest.raises(ValueError, match="0 or 1"):
        fairness.auc(labels * 2, scores)
    with pytest.raises(ValueError, match="one length"):
        fairness.auc(labels, scores[:5])
    with pytest.raises(ValueError, match="mask 'bad'"):
        fairness.metric_table(labels, scores, {"bad": labels[:5] == 1})
    with pytest.raises(TypeError, match="seed"):
        fairness.bootstrap_values(labels, scores, seed="1907")
