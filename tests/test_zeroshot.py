import pytest
import torch

from clipbook import features, metrics, zeroshot
from clipbook.data import registry
from clipbook.toyworld import splits


def _topk_accuracy_numpy2(output, target, topk=(1,)):
    """clip_benchmark 1.6.2's `accuracy`, with `.item()` where it calls float() on a 1-element array
    (an error since NumPy 2.4). Same arithmetic otherwise."""
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return [correct[:k].reshape(-1).float().sum().item() / len(target) for k in topk]


def test_zero_shot_accuracy_equals_clip_benchmark(random_tiny_clip, cache_root, monkeypatch):
    """CLIP_benchmark's zeroshot_classification.evaluate is the oracle: same model, data, templates."""
    from clip_benchmark.metrics import zeroshot_classification

    monkeypatch.setattr(zeroshot_classification, "accuracy", _topk_accuracy_numpy2)

    splits.register_split("unit-test-zs", domain="photo", size=96, home_background_p=None)
    dataset = registry.load_dataset("toy", "unit-test-zs")
    templates = ["a photo of a {}.", "a drawing of a {}."]
    weights = zeroshot.zero_shot_classifier(random_tiny_clip, dataset.classnames, templates)
    ours = metrics.accuracy(zeroshot.zero_shot_logits(features.image_features(random_tiny_clip, dataset), weights),
                            dataset.labels)

    class Preprocessed(torch.utils.data.Dataset):
        classes = dataset.classnames

        def __len__(self):
            return len(dataset)

        def __getitem__(self, i):
            image, label = dataset[i]
            return random_tiny_clip.preprocess(image), label

    loader = torch.utils.data.DataLoader(Preprocessed(), batch_size=32)
    oracle = zeroshot_classification.evaluate(
        random_tiny_clip.model, loader, random_tiny_clip.tokenizer, dataset.classnames,
        [t.replace("{}", "{c}") for t in templates], device="cpu", amp=False)
    assert ours == pytest.approx(oracle["acc1"] * 100, abs=1e-9)


def test_classifier_columns_are_unit_norm_and_templates_validated(random_tiny_clip):
    weights = zeroshot.zero_shot_classifier(random_tiny_clip, ["circle", "star"], zeroshot.TOY_TEMPLATES)
    assert weights.shape == (128, 2)
    assert torch.allclose(weights.norm(dim=0), torch.ones(2), atol=1e-5)
    with pytest.raises(ValueError, match="templates"):
        zeroshot.zero_shot_classifier(random_tiny_clip, ["circle"], ["no placeholder"])


def test_openai_imagenet_templates_come_from_open_clip():
    assert len(zeroshot.OPENAI_IMAGENET_TEMPLATES) == 80 and all("{}" in t for t in zeroshot.OPENAI_IMAGENET_TEMPLATES)
    assert len(zeroshot.IMAGENET_CLASSNAMES) == 1000


def test_prompt_set_classifier_without_renormalising_gives_the_mean_cosine(random_tiny_clip):
    import torch.nn.functional as F

    prompts = [["a round outline", "no corners"], ["three corners"]]
    weights = zeroshot.prompt_set_classifier(random_tiny_clip, prompts, renormalize=False)
    image = F.normalize(torch.randn(1, weights.shape[0]), dim=-1)
    text = F.normalize(random_tiny_clip.encode_text_prompts(prompts[0]).float(), dim=-1)
    assert torch.allclose((image @ weights)[0, 0], (image @ text.T).mean(), atol=1e-6)
    assert torch.allclose(zeroshot.prompt_set_classifier(random_tiny_clip, prompts).norm(dim=0), torch.ones(2))
