import math

import numpy as np
import pytest
import torch

from clipbook import features
from clipbook.cache import load_torch
from clipbook.data import registry
from clipbook.models import tiny_clip, tiny_supervised
from clipbook.toyworld import splits

# 32 generic-family images, 8 steps of 16 over 4 passes: enough for the loss to fall, about a second
QUICK = {"split": "unit-test-supervised-pretrain", "epochs": 4, "batch_size": 16, "warmup_steps": 2}


@pytest.fixture(autouse=True)
def small_pretrain_split():
    splits.register_split("unit-test-supervised-pretrain", domain="photo", size=32, home_background_p=0.3)


def _mean(values) -> float:
    return float(np.mean(values))


def test_pretraining_fits_the_labels_and_is_bit_reproducible(state_digest):
    first = tiny_supervised.pretrain(QUICK, show_progress=False)
    second = tiny_supervised.pretrain(QUICK, show_progress=False)
    assert state_digest(first["state_dict"]) == state_digest(second["state_dict"])
    assert first["images"] == 32 and len(first["loss"]) == 8 and all(math.isfinite(v) for v in first["loss"])
    assert first["recipe"] == {**tiny_supervised.PRETRAIN, **QUICK}
    assert first["state_dict"]["head.weight"].shape == (20, tiny_clip.TINY_CLIP_CONFIG["embed_dim"])
    # from ln 20 = 3.0 at random init; an unlearnt head stays there
    assert _mean(first["loss"][:2]) > 2.5 and _mean(first["loss"][-2:]) < 0.6 * _mean(first["loss"][:2])


def test_the_checkpoint_key_changes_with_every_recipe_entry():
    key = tiny_supervised.checkpoint_key(QUICK)
    assert key == tiny_supervised.checkpoint_key(dict(reversed(QUICK.items())))
    for change in ({"seed": 1}, {"lr": 1e-3}, {"epochs": 5}, {"family": "pets"}, {"weight_decay": 0.0}):
        assert tiny_supervised.checkpoint_key({**QUICK, **change}) != key, change
    assert tiny_supervised.checkpoint_key() != tiny_clip.checkpoint_key()  # same split and seed, another model


def test_the_loader_restores_the_trained_logits_through_the_feature_cache(cache_root):
    loaded = tiny_supervised.load_tiny_supervised(recipe=QUICK, show_progress=False)
    key = tiny_supervised.checkpoint_key(QUICK)
    assert loaded.name == tiny_supervised.TINY_SUPERVISED_NAME and loaded.tokenizer is None
    assert loaded.identity == {"name": tiny_supervised.TINY_SUPERVISED_NAME,
                               "weights": f"toyworld:{tiny_supervised.TINY_SUPERVISED_NAME}-{key}"}
    path = cache_root / "checkpoints" / f"{tiny_supervised.TINY_SUPERVISED_NAME}-{key}.pt"
    assert tiny_supervised.tiny_supervised_checkpoint(QUICK) == str(path)
    stored = load_torch(path)
    assert stored["key"] == key and stored["images"] == 32 and len(stored["loss"]) == 8
    reference = tiny_supervised.build_tiny_classifier(20)
    reference.load_state_dict(stored["state_dict"])
    reference.eval()

    dataset = registry.load_dataset("toy", "unit-test-supervised-pretrain")
    images = [dataset[i][0] for i in range(4)]
    import open_clip

    _, _, clip_preprocess = open_clip.create_model_and_transforms(tiny_clip.TINY_CLIP_NAME, pretrained=None)
    pixels = torch.stack([loaded.preprocess(image) for image in images])
    assert torch.equal(pixels, torch.stack([clip_preprocess(image) for image in images]))  # trained with these
    with torch.no_grad():
        expected = reference.encode_image(pixels)
        assert torch.equal(loaded.model.encode_image(pixels), expected)
    cached = features.image_features(loaded, dataset, indices=[0, 1, 2, 3], normalize=False)
    assert cached.shape == (4, 20) and torch.allclose(cached, expected, atol=1e-5)


def test_an_unknown_family_or_a_split_smaller_than_a_batch_fails_with_what_is_accepted():
    with pytest.raises(ValueError, match="unknown family 'dogs'; known: objects, pets"):
        tiny_supervised.pretrain({**QUICK, "family": "dogs"}, show_progress=False)
    with pytest.raises(ValueError, match="32 objects images .* fewer than one batch of 64"):
        tiny_supervised.pretrain({**QUICK, "batch_size": 64}, show_progress=False)
