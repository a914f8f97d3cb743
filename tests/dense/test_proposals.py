import numpy as np
import pytest
import torch
from clipbook.dense import benchmarks, proposals


def _gt(scenes):
    return [np.stack([a["mask"] for a in s.annotations()]) for s in scenes]


def test_proposals_are_deterministic_and_imperfect():
    scenes = benchmarks.scenes("toy-voc21", "val")[:40]
    first, again = proposals.toy_proposals(scenes, seed=3), proposals.toy_proposals(scenes, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, proposals.toy_proposals(scenes, seed=4)))
    recall = proposals.proposal_recall(first, _gt(scenes))
    assert 0.4 < recall < 1.0  # a degraded stand-in, not the ground truth
    perfect = [g[g.reshape(len(g), -1).any(1)] for g in _gt(scenes)]
    assert proposals.proposal_recall(perfect, _gt(scenes)) == 1.0


def test_recall_against_a_pixel_count():
    rng = np.random.default_rng(0)
    props = [rng.random((5, 12, 12)) < 0.5 for _ in range(6)]
    gts = [rng.random((3, 12, 12)) < 0.5 for _ in range(6)]
    hits = total = 0
    for p, g in zip(props, gts):
        for gt in g:
            total += 1
            best = max(((pp & gt).sum() / (pp | gt).sum()) for pp in p)
            hits += best >= 0.34
    assert proposals.proposal_recall(props, gts, 0.34) == pytest.approx(hits / total)


def test_semantic_inference_is_mask2formers_sum_over_queries():
    masks, classes = torch.rand(4, 6, 7), torch.rand(4, 3).softmax(-1)
    expected = sum(classes[q][:, None, None] * masks[q][None] for q in range(4))
    torch.testing.assert_close(proposals.semantic_inference(masks, classes), expected)
    with pytest.raises(ValueError, match="one class distribution per mask"):
        proposals.semantic_inference(masks, classes[:3])


def test_unknown_settings_fail():
    with pytest.raises(ValueError, match="unknown proposal settings"):
        proposals.toy_proposals([], config={"recall": 1.0})
