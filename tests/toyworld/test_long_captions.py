import numpy as np
import pytest
from clipbook.toyworld import long_captions, splits, world
from open_clip.tokenizer import SimpleTokenizer

CONTEXT_WORDS = 30  # the tiny CLIP's 32 tokens less the start and end tokens


@pytest.fixture(scope="module")
def tokenizer():
    return SimpleTokenizer()


@pytest.mark.parametrize("split", ["test", "pets-test", "aircraft-test", "flowers-test", "food-test", "textures-test"])
def test_the_class_and_its_colour_come_after_the_context(split, tokenizer):
    for scene in splits.scenes(split)[:12]:
        text = long_captions.long_caption(scene)
        tokens = tokenizer.encode(text)
        assert len(tokens) > 32
        kept = tokenizer.decode(tokens[:CONTEXT_WORDS])
        assert scene.classname not in kept and scene.classname in text.lower()
        if world.CLASSES[scene.classname]["colour"] is None:
            assert f"colour is {scene.colour}" not in kept and f"colour is {scene.colour}" in text


def test_places_and_land_name_their_class_late_too(tokenizer):
    for split in ("scenes-test", "satellite-test"):
        for scene in splits.scenes(split)[:12]:
            text = long_captions.long_caption(scene)
            assert scene.classname not in tokenizer.decode(tokenizer.encode(text)[:CONTEXT_WORDS])
            assert scene.classname in text


def test_wording_varies_with_the_generator_but_not_the_facts():
    scene = splits.scenes("test")[0]
    texts = {long_captions.long_caption(scene, np.random.default_rng(seed)) for seed in range(8)}
    assert len(texts) > 1
    assert all(f"Its main colour is {scene.colour}." in text for text in texts)
    assert long_captions.long_caption(scene) == long_captions.long_caption(scene)


def test_the_short_caption_fits_the_context(tokenizer):
    for scene in splits.scenes("test")[:20]:
        assert len(tokenizer.encode(long_captions.short_caption(scene))) <= CONTEXT_WORDS
