import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from clipbook.evaluation.embedding_space import alignment, modality_gap, uniformity


def test_uniformity_equals_a_loop_over_distinct_pairs():
    x = F.normalize(torch.randn(9, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    terms = [math.exp(-2 * float((x[i] - x[j]).pow(2).sum())) for i, j in itertools.combinations(range(9), 2)]
    assert uniformity(x) == pytest.approx(math.log(sum(terms) / len(terms)), rel=1e-5)


def test_alignment_of_identical_pairs_is_zero_and_of_antipodal_pairs_is_four():
    x = torch.randn(5, 3)
    assert alignment(x, x) == pytest.approx(0.0, abs=1e-6)
    assert alignment(x, -x) == pytest.approx(4.0, rel=1e-5)  # ||u - (-u)||^2 = 4 on the unit sphere


def test_uniformity_of_collapsed_points_is_zero_and_of_a_spread_set_is_lower():
    assert uniformity(torch.ones(6, 3)) == pytest.approx(0.0, abs=1e-6)
    spread = torch.eye(3).repeat(2, 1) * torch.tensor([[1.0], [1.0], [1.0], [-1.0], [-1.0], [-1.0]])
    assert uniformity(spread) < -1


def test_modality_gap_of_shifted_clouds():
    images = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    texts = torch.tensor([[0.0, 2.0], [0.0, 5.0]])
    assert modality_gap(images, texts) == pytest.approx(math.sqrt(2))
    assert modality_gap(images, images) == 0


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        alignment(torch.ones(2, 3), torch.ones(3, 3))
    with pytest.raises(ValueError, match="at least 2"):
        uniformity(torch.ones(1, 3))
