import numpy as np
import pytest

from clipbook.data import fewshot


def test_k_shots_per_class_deterministic_per_seed():
    labels = np.repeat(np.arange(5), 20)
    a = fewshot.sample_few_shot(labels, 4, seed=1)
    b = fewshot.sample_few_shot(labels, 4, seed=1)
    c = fewshot.sample_few_shot(labels, 4, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.bincount(labels[a]).tolist() == [4] * 5
    assert len(set(a.tolist())) == len(a)  # without replacement


def test_small_class_keeps_all_items_or_repeats():
    labels = np.array([0] * 10 + [1] * 2)
    assert np.bincount(labels[fewshot.sample_few_shot(labels, 4, seed=1)]).tolist() == [4, 2]
    assert np.bincount(labels[fewshot.sample_few_shot(labels, 4, seed=1, repeat=True)]).tolist() == [4, 4]


def test_coop_val_has_min_k_4_shots():
    labels = np.repeat(np.arange(3), 30)
    split = fewshot.coop_few_shot_split(labels, labels, 16, seed=1)
    assert np.bincount(labels[split["train"]]).tolist() == [16] * 3
    assert np.bincount(labels[split["val"]]).tolist() == [4] * 3


@pytest.mark.parametrize("bad", [0, -1, 2.5, "4", True])
def test_bad_shots_are_refused(bad):
    with pytest.raises(ValueError, match="shots must be a positive integer"):
        fewshot.sample_few_shot([0, 1], bad, seed=1)
