import numpy as np
import pytest
import torch
from clipbook.evaluation.pairs import clip_blind, pair_accuracy, pair_choices


def _mmvp_loop(image_a, image_b, text_a, text_b, scale=100.0):
    """MMVP's evaluate_vlm.py, pair by pair: softmax of each statement over the two images, both must be right."""
    right = 0
    for ia, ib, ta, tb in zip(image_a, image_b, text_a, text_b):
        images = torch.stack([ia / ia.norm(), ib / ib.norm()])
        p1 = (scale * images @ (ta / ta.norm())).softmax(0)[0]
        p2 = (scale * images @ (tb / tb.norm())).softmax(0)[0]
        right += int(p1 > 0.5 and not p2 > 0.5)
    return 100.0 * right / len(image_a)


def test_pair_accuracy_equals_mmvps_loop_on_noisy_features():
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(40, 8, generator=generator)
    image_a = base + 0.3 * torch.randn(40, 8, generator=generator)
    image_b = base + 0.3 * torch.randn(40, 8, generator=generator)
    text_a = image_a + 0.8 * torch.randn(40, 8, generator=generator)
    text_b = image_b + 0.8 * torch.randn(40, 8, generator=generator)
    accuracy = pair_accuracy(image_a, image_b, text_a, text_b)
    assert 0 < accuracy < 100
    assert accuracy == pytest.approx(_mmvp_loop(image_a, image_b, text_a, text_b))


def test_a_model_that_cannot_tell_the_images_apart_scores_zero_not_chance():
    images = torch.randn(5, 4)
    texts = torch.randn(5, 4)
    # identical images: each statement's softmax is exactly 0.5, which picks image b for both (MMVP's strict >)
    choices = pair_choices(images, images, texts, texts + 1)
    assert not choices["pair"].any() and choices["b"].all()


def test_swapped_statements_score_zero_and_own_statements_score_100():
    image_a, image_b = torch.eye(4)[:2], torch.eye(4)[2:]
    assert pair_accuracy(image_a, image_b, image_a, image_b) == 100.0
    assert pair_accuracy(image_a, image_b, image_b, image_a) == 0.0


def test_clip_blind_pairs_are_clip_similar_and_reference_dissimilar():
    clip_a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    clip_b = torch.tensor([[1.0, 0.1], [0.0, 1.0], [1.0, 0.1]])
    ref_a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    ref_b = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    assert clip_blind(clip_a, clip_b, ref_a, ref_b).tolist() == [True, False, False]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        pair_accuracy(torch.ones(3, 2), torch.ones(2, 2), torch.ones(3, 2), torch.ones(3, 2))
