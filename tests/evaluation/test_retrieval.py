import numpy as np
import pytest
import torch
from clip_benchmark.metrics import zeroshot_retrieval
from clipbook.evaluation import retrieval
from clipbook.evaluation.retrieval import recall_at_k, text_features


class _FeatureModel(torch.nn.Module):
    """A 'model' whose images and texts are indices into given feature tables, for CLIP_benchmark."""

    def __init__(self, image_table, text_table):
        super().__init__()
        self.image_table, self.text_table = image_table, text_table

    def encode_image(self, indices):
        return self.image_table[indices]

    def encode_text(self, indices):
        return self.text_table[indices]


def _clip_benchmark(images, texts, captions_per_image, ks):
    model = _FeatureModel(images, texts)
    batches, j = [], 0
    for start in range(0, len(images), 7):  # CLIP_benchmark's loader yields (images, list of caption lists)
        idx = torch.arange(start, min(start + 7, len(images)))
        caption_ids = []
        for i in idx:
            caption_ids.append(list(range(j, j + captions_per_image[int(i)])))
            j += captions_per_image[int(i)]
        batches.append((idx, caption_ids))
    tokenizer = lambda ids: torch.as_tensor(ids)
    return zeroshot_retrieval.evaluate(model, batches, tokenizer, "cpu", amp=False, recall_k_list=list(ks))


@pytest.mark.parametrize("seed", [0, 1])
def test_recall_equals_clip_benchmark_on_the_same_features(seed):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(40, 8, generator=generator)
    per_image = torch.randint(1, 6, (40,), generator=generator).tolist()
    owner = np.repeat(np.arange(40), per_image)
    # captions near their image, noisy enough that retrieval is imperfect
    texts = images[owner] + 1.2 * torch.randn(len(owner), 8, generator=generator)
    ks = (1, 5, 10)
    ours = recall_at_k(images, texts, owner, ks)
    oracle = _clip_benchmark(images, texts, per_image, ks)
    assert set(ours) == set(oracle)
    for key in oracle:
        assert ours[key] == pytest.approx(100 * oracle[key], abs=1e-4), key
    assert 0 < ours["image_retrieval_recall@1"] < ours["image_retrieval_recall@10"] < 100


def test_a_perfect_and_a_reversed_gallery():
    images = torch.eye(4)
    assert recall_at_k(images, images, [0, 1, 2, 3], ks=(1,)) == {"image_retrieval_recall@1": 100.0,
                                                                   "text_retrieval_recall@1": 100.0}
    # every caption is nearest to the wrong image: nothing at K=1, everything at K=2
    texts = images[[1, 0, 3, 2]]
    scores = recall_at_k(images, texts + 0.1 * images, [0, 1, 2, 3], ks=(1, 2))
    assert scores["image_retrieval_recall@1"] == 0 and scores["image_retrieval_recall@2"] == 100


def test_bad_shapes_and_indices_fail_with_their_reason():
    with pytest.raises(ValueError, match="one image index per caption"):
        recall_at_k(torch.randn(3, 4), torch.randn(5, 4), [0, 1, 2])
    with pytest.raises(ValueError, match="indexes images 0..2"):
        recall_at_k(torch.randn(3, 4), torch.randn(2, 4), [0, 3])
    with pytest.raises(ValueError, match="same D"):
        recall_at_k(torch.randn(3, 4), torch.randn(2, 5), [0, 1])


def test_text_features_are_unit_rows_in_input_order(random_tiny_clip):
    texts = ["a red circle.", "a blue square.", "a red circle."]
    features = text_features(random_tiny_clip, texts, batch_size=2)
    assert features.shape[0] == 3 and torch.allclose(features.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(features[0], features[2], atol=1e-6)


def test_identical_captions_of_different_images_count_as_not_told_apart():
    """Two images whose captions are the same string get the same text feature: neither query can pick its own
    image over the other, so neither is found at 1 (a strict-greater count would find both), and both at 2."""
    images = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    result = recall_at_k(images, texts, [0, 1, 2], ks=(1, 2))
    assert result["image_retrieval_recall@1"] == pytest.approx(100 / 3)
    assert result["text_retrieval_recall@1"] == pytest.approx(100 / 3)
    assert result["image_retrieval_recall@2"] == 100.0 and result["text_retrieval_recall@2"] == 100.0


def test_an_images_own_captions_tying_with_each_other_do_not_push_it_down():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # image 0 has two identical captions
    result = recall_at_k(images, texts, [0, 0, 1], ks=(1,))
    assert result["text_retrieval_recall@1"] == 100.0 and result["image_retrieval_recall@1"] == 100.0


def test_caption_retrieval_sets_give_each_toy_caption_its_scene():
    from clipbook.toyworld import caption_sets

    [(name, dataset, texts, owner)] = retrieval.caption_retrieval_sets(["toy-scenes"], per_image=2)
    assert name == "toy-scenes" and len(texts) == 2 * len(dataset) == len(owner)
    expected_texts, expected_owner = caption_sets.captions(dataset.scenes, "detailed", per_image=2, seed=1)
    assert texts == expected_texts and owner.tolist() == list(expected_owner)
    assert set(owner.tolist()) == set(range(len(dataset)))


def test_recall_metrics_name_each_direction_in_table_order():
    # caption 1 belongs to image 1 but is image 0's twin: text→image finds caption 0 only (50 %); image→text finds
    # nothing, because each image's best caption ties with the other image's (ties count as not told apart)
    images, texts = torch.eye(2), torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    named = retrieval.recall_metrics(images, texts, [0, 1], ks=(1, 2))
    assert list(named) == ["R@1 text→image", "R@1 image→text", "R@2 text→image", "R@2 image→text"]
    assert named["R@1 text→image"] == 50.0 and named["R@1 image→text"] == 0.0
    assert named["R@2 text→image"] == named["R@2 image→text"] == 100.0
