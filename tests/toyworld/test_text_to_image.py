import numpy as np
import pytest
from PIL import Image

from clipbook.toyworld import splits, text_to_image, world
from clipbook.toyworld.text_to_image import SceneDataset, parse_caption, render_caption, scene_from_caption

# what each caption level states about a scene (world.caption)
STATED = {
    "name": {"domain"},
    "short": {"colour"},
    "medium": {"domain", "size", "colour", "position", "background"},
    "long": {"domain", "size", "colour", "position", "background"},
    "description": {"domain", "colour"},
}
ATTRIBUTES = ("colour", "size", "position", "background", "domain")


def _scene(**overrides):
    base = dict(label=0, colour="red", size="large", position="centre", background="plain", domain="photo",
                angle=0.0, dx=0.0, dy=0.0, noise_seed=1)
    return world.Scene(**{**base, **overrides})


@pytest.mark.parametrize("split", ["val", "noise-val", "sketch-val"])
@pytest.mark.parametrize("level", world.CAPTION_LEVELS)
def test_every_caption_level_parses_back_to_what_it_states(split, level):
    for scene in splits.scenes(split)[:120]:
        parsed = parse_caption(world.caption(scene, level))
        assert parsed["classname"] == scene.classname
        for attribute in ATTRIBUTES:
            expected = getattr(scene, attribute) if attribute in STATED[level] else None
            assert parsed[attribute] == expected, (level, attribute, world.caption(scene, level))


def test_a_caps_prompt_prefix_keeps_the_class_and_the_specific_style():
    scene = _scene(label=world.CLASS_NAMES.index("heart"), domain="noise", position="left")
    prompt = f"A photo of heart. {world.caption(scene, 'long')}"
    parsed = parse_caption(prompt)
    assert parsed["classname"] == "heart" and parsed["domain"] == "noise" and parsed["position"] == "left"


def test_phrases_inside_descriptions_are_not_read_as_attributes():
    # a heart's "a point at the bottom" is not a position; a cross's "two crossing bars" names no bar
    assert parse_caption("a photo of a heart with a point at the bottom.")["position"] is None
    assert parse_caption("a photo of a cross with two crossing bars.")["classname"] == "cross"
    assert parse_caption("a photo of a star with narrow arms.")["classname"] == "star"


def test_a_description_alone_identifies_the_class():
    assert parse_caption("a sketch of a blue shape with a hole in the middle.")["classname"] == "ring"


@pytest.mark.parametrize("caption, message", [
    ("a photo of a red shape.", "names no toy-world class"),
    ("", "names no toy-world class"),
    ("a circle and a square.", "several classes"),
    ("a red and blue circle.", "several colours"),
    ("a sketch of a circle, a noisy photo of a circle.", "several styles"),
    ("a small large circle.", "several sizes"),
])
def test_ambiguous_or_classless_captions_are_errors(caption, message):
    with pytest.raises(ValueError, match=message):
        parse_caption(caption)


def test_parse_caption_rejects_non_strings():
    with pytest.raises(TypeError, match="caption must be a string"):
        parse_caption(None)


def test_scene_keeps_stated_attributes_and_draws_the_rest():
    caption = "a photo of a small red circle at the left on a striped background."
    scenes = [scene_from_caption(caption, seed) for seed in range(20)]
    for scene in scenes:
        assert (scene.classname, scene.size, scene.colour, scene.position, scene.background, scene.domain) == (
            "circle", "small", "red", "left", "stripes", "photo")
        assert abs(scene.angle) <= text_to_image.ANGLE_JITTER
        assert abs(scene.dx) <= text_to_image.SHIFT_JITTER and abs(scene.dy) <= text_to_image.SHIFT_JITTER
    assert len({(s.angle, s.dx, s.dy, s.noise_seed) for s in scenes}) == len(scenes)

    free = [scene_from_caption("a circle.", seed) for seed in range(60)]
    for attribute, vocabulary in (("colour", world.COLOURS), ("size", world.SIZES),
                                  ("position", world.POSITIONS), ("background", world.BACKGROUNDS)):
        drawn = {getattr(s, attribute) for s in free}
        assert drawn <= set(vocabulary) and len(drawn) > 1, attribute


def test_generation_is_deterministic_given_a_seed():
    caption = world.caption(splits.scenes("val")[0], "medium")
    assert scene_from_caption(caption, 7) == scene_from_caption(caption, 7)
    assert scene_from_caption(caption, [7, 3]) == scene_from_caption(caption, [7, 3])
    assert scene_from_caption(caption, 7) != scene_from_caption(caption, 8)
    a = scene_from_caption(caption, np.random.default_rng(5))
    b = scene_from_caption(caption, np.random.default_rng(5))
    assert a == b
    assert np.array_equal(render_caption(caption, 7), render_caption(caption, 7))


def test_domain_follows_the_caption_unless_overridden():
    assert scene_from_caption("a circle.", 0).domain == "photo"  # no style stated: the generator's default
    assert scene_from_caption("a sketch of a circle.", 0).domain == "sketch"
    assert scene_from_caption("A photo of circle. a noisy photo of a circle.", 0).domain == "noise"
    assert scene_from_caption("a noisy photo of a circle.", 0, domain="photo").domain == "photo"
    with pytest.raises(ValueError, match="unknown domain"):
        scene_from_caption("a circle.", 0, domain="oil-painting")
    with pytest.raises(TypeError, match="seed must be"):
        scene_from_caption("a circle.", 1.5)


def test_rendered_image_shows_the_stated_colour():
    image = render_caption("a photo of a large green square in the centre on a plain grey background.", 3)
    assert image.shape == (world.IMAGE_SIZE, world.IMAGE_SIZE, 3) and image.dtype == np.uint8
    scene = scene_from_caption("a photo of a large green square in the centre on a plain grey background.", 3)
    _, mask = world.render(scene)
    inside = image[mask].astype(float).mean(axis=0)
    assert np.abs(inside - np.array(world.COLOURS["green"])).max() < 60


def test_scene_dataset_behaves_like_a_library_dataset():
    scenes = [scene_from_caption(f"a {colour} star.", i) for i, colour in enumerate(world.COLOURS)]
    dataset = SceneDataset(scenes, name="unit", split="s1")
    assert len(dataset) == len(scenes) and dataset.classnames == world.CLASS_NAMES
    assert (dataset.labels == world.CLASS_NAMES.index("star")).all()
    image, label = dataset[2]
    assert isinstance(image, Image.Image) and label == world.CLASS_NAMES.index("star")
    assert np.array_equal(np.asarray(image), world.render(scenes[2])[0])
    assert dataset.fingerprint() == SceneDataset(scenes, name="other", split="s2").fingerprint()
    assert dataset.fingerprint() != SceneDataset(scenes[:-1]).fingerprint()
    with pytest.raises(TypeError, match="Scene"):
        SceneDataset(["a star."])


def test_scene_dataset_features_are_cached_by_content(cache_root, random_tiny_clip):
    from clipbook import features

    scenes = [scene_from_caption("a photo of a ring.", i) for i in range(4)]
    first = features.image_features(random_tiny_clip, SceneDataset(scenes, name="unit"))
    again = features.image_features(random_tiny_clip, SceneDataset(scenes, name="unit"))
    assert first.shape[0] == 4 and np.array_equal(first.numpy(), again.numpy())
    assert len(list((cache_root / "features").glob("unit-*.pt"))) == 1
    features.image_features(random_tiny_clip, SceneDataset(scenes[:3], name="unit"))
    assert len(list((cache_root / "features").glob("unit-*.pt"))) == 2
