import numpy as np
import pytest
import torch

from clipbook.dense import benchmarks
from clipbook.dense.segmentor import LOGIT_SCALE, PROB_THRESHOLDS, query_words, segment


def test_background_is_queried_by_the_worlds_surfaces_like_voc21_by_stuff_words():
    words, classes = query_words("toy-voc21")
    surfaces = list(benchmarks.STUFF.values())
    assert words[:len(surfaces)] == surfaces and classes[:len(surfaces)] == [0] * len(surfaces)
    assert words[len(surfaces):] == benchmarks.classnames("toy-voc21")[1:]
    assert classes[len(surfaces):] == list(range(1, 21))
    for name in ("toy-voc20", "toy-context"):  # no background class: one query per class
        assert query_words(name) == (benchmarks.classnames(name), list(range(len(benchmarks.classnames(name)))))
    assert set(PROB_THRESHOLDS) <= set(benchmarks.OVSS_BENCHMARKS)


def _segment_by_hand(logits, classes, scale, threshold):
    """Per pixel: softmax over queries, max per class, argmax, threshold to background (a plain loop)."""
    n, q, h, w = logits.shape
    out = np.zeros((n, h, w), np.int64)
    for i in range(n):
        for y in range(h):
            for x in range(w):
                z = logits[i, :, y, x].double().numpy() * scale
                p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
                per_class = [max(p[j] for j in range(q) if classes[j] == c) for c in range(max(classes) + 1)]
                out[i, y, x] = int(np.argmax(per_class)) if max(per_class) >= threshold else 0
    return out


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.5])
def test_read_out_equals_a_per_pixel_loop(threshold):
    generator = torch.Generator().manual_seed(0)
    logits = torch.rand(2, 7, 5, 4, generator=generator, dtype=torch.float64) * 0.3
    classes = [0, 0, 0, 1, 2, 3, 3]
    expected = _segment_by_hand(logits, classes, LOGIT_SCALE, threshold)
    assert np.array_equal(segment(logits, classes, prob_threshold=threshold).numpy(), expected)


def test_a_class_scores_its_best_query_and_a_diffuse_pixel_falls_to_background():
    logits = torch.tensor([0.30, 0.10, 0.25, 0.0]).view(1, 4, 1, 1)  # queries of classes 0, 0, 1, 2
    assert segment(logits, [0, 0, 1, 2]).item() == 0
    flat = torch.zeros(1, 4, 1, 1)  # every query equal: the winner has probability 1/4
    assert segment(flat, [1, 1, 2, 3], prob_threshold=0.3).item() == 0
    assert segment(flat, [1, 1, 2, 3], prob_threshold=0.2).item() == 1
    with pytest.raises(ValueError, match="Q = 3"):
        segment(logits, [0, 1, 2])
