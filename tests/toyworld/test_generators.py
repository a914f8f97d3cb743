"""The toy text-to-image generators: which attributes follow the prompt, which are collapsed or random."""
from dataclasses import replace

import numpy as np
import pytest

from clipbook.toyworld import generators, text_to_image


@pytest.fixture(scope="module")
def prompts():
    return generators.prompt_captions(40, seed=3)


def _stated(prompts, attribute):
    return np.array([text_to_image.parse_caption(p)[attribute] for p in prompts])


def test_prompts_state_every_attribute_and_are_seeded(prompts):
    assert prompts == generators.prompt_captions(40, seed=3)
    assert prompts != generators.prompt_captions(40, seed=4)
    for attribute in ("colour", "size", "position", "background"):
        assert len(set(_stated(prompts, attribute))) > 1, attribute


def test_faithful_follows_every_stated_attribute(prompts):
    images, paired = generators.generate(prompts, "faithful", images_per_prompt=2, seed=1)
    assert len(images) == 80 and paired[::2] == prompts and paired[1::2] == prompts
    for attribute in ("colour", "size", "position", "background"):
        assert (images.attribute(attribute) == _stated(paired, attribute)).all(), attribute
    # two copies of one prompt are two different images (jitter, noise)
    assert images.scenes[0] != images.scenes[1]


def test_faithful_renders_what_scene_from_caption_renders(prompts):
    images, _ = generators.generate(prompts[:5], "faithful", images_per_prompt=2, seed=9)
    expected = [text_to_image.scene_from_caption(p, seed=[9, i, j]) for i, p in enumerate(prompts[:5]) for j in range(2)]
    assert list(images.scenes) == expected


def test_collapsed_generator_renders_one_value_and_only_differs_there(prompts):
    faithful, _ = generators.generate(prompts, "faithful", images_per_prompt=2, seed=1)
    collapsed, _ = generators.generate(prompts, "ignores-colour", images_per_prompt=2, seed=1)
    assert set(collapsed.attribute("colour")) == {"red"}
    assert all(replace(a, colour="red") == b for a, b in zip(faithful.scenes, collapsed.scenes))
    background, _ = generators.generate(prompts, "ignores-background", images_per_prompt=2, seed=1)
    assert set(background.attribute("background")) == {"plain"}


def test_random_generator_ignores_the_prompt_but_keeps_the_diversity(prompts):
    images, paired = generators.generate(prompts, "random-colour", images_per_prompt=5, seed=2)
    drawn, asked = images.attribute("colour"), _stated(paired, "colour")
    assert len(set(drawn)) == len(generators.ATTRIBUTE_VALUES["colour"])
    assert (drawn == asked).mean() < 0.3  # chance is 1/8
    assert (images.attribute("background") == _stated(paired, "background")).all()


def test_ignores_prompt_pairs_images_with_other_prompts(prompts):
    images, paired = generators.generate(prompts, "ignores-prompt", images_per_prompt=1, seed=5)
    assert paired == prompts
    matches = (images.attribute("colour") == _stated(paired, "colour")).mean()
    assert matches < 0.5
    assert sorted(images.attribute("colour")) == sorted(_stated(paired, "colour"))  # same images, other pairing


def test_bad_input_is_named():
    with pytest.raises(KeyError, match="unknown generator 'sdxl'; known: faithful"):
        generators.generate(["a photo of a red circle."], "sdxl", images_per_prompt=1, seed=0)
    with pytest.raises(ValueError, match="images_per_prompt"):
        generators.generate(["a photo of a red circle."], "faithful", images_per_prompt=0, seed=0)
