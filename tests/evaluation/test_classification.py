import pytest
import torch

from clipbook import zeroshot
from clipbook.data import registry
from clipbook.evaluation.classification import ClassificationTask


@pytest.fixture(scope="module")
def task(random_tiny_clip):
    return ClassificationTask(random_tiny_clip, "toy")


def test_splits_templates_and_features_come_from_the_registry(task, cache_root):
    assert task.templates == [registry.DATASETS["toy"]["template"]]
    assert task.num_classes == len(registry.load_dataset("toy", "test").classnames)
    x, y = task.features("val")
    assert x.shape[0] == len(y) == len(registry.load_dataset("toy", "val"))
    assert torch.allclose(x.norm(dim=-1), torch.ones(len(x)), atol=1e-5)
    indices = task.few_shot_split(2, seed=1)["train"]
    x_k, y_k = task.few_shot_features(indices)
    assert len(x_k) == 2 * task.num_classes and torch.equal(y_k, task.labels("train")[torch.as_tensor(indices)])
    x_aug, y_aug = task.few_shot_features(indices, augment_scale=(0.5, 1.0), passes=2)
    assert len(x_aug) == 2 * len(x_k) and torch.equal(y_aug, y_k.repeat(2))


def test_zero_shot_accuracy_equals_the_library_classifier(task, cache_root):
    x, y = task.features("test")
    weights = zeroshot.zero_shot_classifier(task.loaded, task.classnames, ["a photo of a {}."])
    assert task.zero_shot_accuracy() == pytest.approx(float((zeroshot.zero_shot_logits(x, weights).argmax(1) == y)
                                                            .double().mean() * 100))


def test_accuracy_over_a_class_subset_drops_other_images_and_argmaxes_within_the_subset():
    logits = torch.tensor([[0.0, 5.0, 1.0], [3.0, 0.0, 1.0], [0.0, 9.0, 2.0], [1.0, 0.0, 0.5]])
    labels = torch.tensor([2, 0, 2, 1])
    # among classes {0, 2}: image 0 -> 2 (right), 1 -> 0 (right), 2 -> 2 (right); image 3 (class 1) is dropped
    assert ClassificationTask.accuracy(logits, labels, classes=[0, 2]) == 100.0
    assert ClassificationTask.accuracy(logits, labels) == 25.0
    with pytest.raises(ValueError, match="none of the labels"):
        ClassificationTask.accuracy(logits, labels, classes=[5])


def test_base_new_halves_follow_dassl(task):
    base, new = task.base_new_classes()
    assert base + new == list(range(task.num_classes)) and len(base) == (task.num_classes + 1) // 2


def test_zero_shot_accuracy_of_features_encoded_elsewhere(task, cache_root):
    x, _ = task.features("test")
    assert task.zero_shot_accuracy_of(x) == task.zero_shot_accuracy()
    # features of the wrong split are refused rather than scored against the test labels
    with pytest.raises(ValueError, match="test has"):
        task.zero_shot_accuracy_of(x[:-1])
