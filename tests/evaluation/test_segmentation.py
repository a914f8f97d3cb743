import numpy as np
import pytest
import torch
from clipbook.evaluation.segmentation import (IGNORE_INDEX, IoUAccumulator, commonest_class_miou, intersect_and_union,
                                              mean_iou, reduce_zero_label)


def _maps(seed, n=6, num_classes=5, shape=(9, 11), ignore_rate=0.1):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, (n, *shape))
    labels[rng.random(labels.shape) < ignore_rate] = IGNORE_INDEX
    # predictions agree with the label 60 % of the time, so IoUs are neither 0 nor 1
    predictions = np.where(rng.random(labels.shape) < 0.6, labels, rng.integers(0, num_classes, labels.shape))
    predictions[predictions == IGNORE_INDEX] = 0
    return predictions, labels


def _brute_force(predictions, labels, num_classes):
    """Pixel by pixel, dataset-level areas, then the per-class ratios (mmseg's order of summing and dividing)."""
    inter, pred, lab = np.zeros(num_classes), np.zeros(num_classes), np.zeros(num_classes)
    for p_map, l_map in zip(predictions, labels):
        for p, l in zip(p_map.ravel(), l_map.ravel()):
            if l == IGNORE_INDEX:
                continue
            lab[l] += 1
            if 0 <= p < num_classes:
                pred[p] += 1
                inter[p] += p == l
    iou = [i / u if u else np.nan for i, u in zip(inter, pred + lab - inter)]
    return 100 * np.nanmean(iou), 100 * inter.sum() / lab.sum(), iou


@pytest.mark.parametrize("seed", [0, 1])
def test_mean_iou_equals_a_pixel_by_pixel_count(seed):
    predictions, labels = _maps(seed)
    result = mean_iou(predictions, labels, num_classes=5)
    miou, aacc, iou = _brute_force(predictions, labels, 5)
    assert result["mIoU"] == pytest.approx(miou, abs=1e-9)
    assert result["aAcc"] == pytest.approx(aacc, abs=1e-9)
    np.testing.assert_allclose(result["IoU"], 100 * np.array(iou), atol=1e-9)


def test_dataset_level_accumulation_is_not_a_mean_of_per_image_ious():
    big = (np.zeros((10, 10), int), np.zeros((10, 10), int))  # class 0 right everywhere on a big image
    small_label = np.array([[0, 1]])
    small = (np.array([[1, 1]]), small_label)  # and wrong on one pixel of a small one
    result = mean_iou([big[0], small[0]], [big[1], small[1]], num_classes=2)
    assert result["IoU"][0] == pytest.approx(100 * 100 / 101)
    assert result["IoU"][1] == pytest.approx(50.0)


def test_a_class_absent_everywhere_is_left_out_of_the_mean_not_counted_as_zero():
    prediction = np.array([[0, 0], [1, 1]])
    result = mean_iou([prediction], [prediction], num_classes=3)
    assert np.isnan(result["IoU"][2])
    assert result["mIoU"] == pytest.approx(100.0)


def test_ignored_pixels_do_not_count_whatever_is_predicted_there():
    label = np.array([[0, IGNORE_INDEX], [1, 1]])
    assert mean_iou([np.array([[0, 1], [1, 1]])], [label], 2)["mIoU"] == pytest.approx(100.0)
    assert mean_iou([np.array([[0, 0], [1, 1]])], [label], 2)["mIoU"] == pytest.approx(100.0)


def test_out_of_range_predictions_miss_their_pixel_but_enter_no_class():
    areas = intersect_and_union(np.array([[7, 0]]), np.array([[0, 0]]), num_classes=2)
    intersect, union, predicted, labelled = areas
    assert list(intersect) == [1, 0] and list(predicted) == [1, 0] and list(labelled) == [2, 0]
    assert list(union) == [2, 0]


def test_update_in_pieces_equals_one_call():
    predictions, labels = _maps(3)
    accumulator = IoUAccumulator(5)
    for p, l in zip(predictions, labels):
        accumulator.update(p, l)
    assert accumulator.compute()["mIoU"] == mean_iou([predictions], [labels], 5)["mIoU"]


def test_reduce_zero_label_as_mmseg_loads_ade20k():
    assert reduce_zero_label([[0, 1, 2, 255]]).tolist() == [[255, 0, 1, 255]]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same shape"):
        intersect_and_union(np.zeros((2, 2)), np.zeros((2, 3)), 2)
    with pytest.raises(ValueError, match="labels must be 0..1"):
        intersect_and_union(np.zeros((1, 1)), np.full((1, 1), 4), 2)
    with pytest.raises(ValueError, match="num_classes"):
        IoUAccumulator(0)


def test_agrees_with_torchmetrics_jaccard_index():
    torchmetrics = pytest.importorskip("torchmetrics")
    predictions, labels = _maps(5, num_classes=4)
    metric = torchmetrics.classification.MulticlassJaccardIndex(num_classes=4, average=None,
                                                                ignore_index=IGNORE_INDEX)
    metric.update(torch.as_tensor(predictions), torch.as_tensor(labels))
    np.testing.assert_allclose(mean_iou(predictions, labels, 4)["IoU"], 100 * metric.compute().numpy(), atol=1e-4)


def test_the_commonest_class_floor_is_its_pixel_share_over_the_classes_present():
    labels = np.array([[[0, 0, 0, 1], [2, 2, 255, 0]], [[0, 1, 255, 255], [0, 0, 0, 0]]])
    # class 0 holds 9 of the 13 labelled pixels; classes 0, 1, 2 are present, so the floor is (9/13) / 3
    assert commonest_class_miou(labels, 4) == pytest.approx(100 * 9 / 13 / 3)
    with pytest.raises(ValueError, match="no labelled pixel"):
        commonest_class_miou(np.full((2, 2), 255), 4)
