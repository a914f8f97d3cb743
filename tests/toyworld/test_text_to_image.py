import numpy as np
import pytest
import torch
from PIL import Image

from clipbook.toyworld import splits, suite, text_to_image, world
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
        # a description alone can fit classes of two families (a ring's and a donut's "a hole in the middle"):
        # read it within the dataset's family
        family = scene.family if level == "description" else None
        parsed = parse_caption(world.caption(scene, level), family)
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
    assert parse_caption("a sketch of a blue shape with a hole in the middle.", "objects")["classname"] == "ring"
    assert parse_caption("a photo of a shape with pink icing.")["classname"] == "donut"
    assert parse_caption("a photo of a pet with pointed ears and spotted fur.")["classname"] == "bengal"
    for aircraft in world.FAMILY_CLASSES["aircraft"]:  # wings, fuselage, tail and engines together name a variant
        described = f"a photo of an airliner with {', '.join(world.CLASSES[aircraft]['descriptions'])}."
        assert parse_caption(described) == {"classname": aircraft, "family": "aircraft", "colour": None, "size": None,
                                            "position": None, "background": None, "domain": "photo"}
    assert parse_caption("a satellite photo of land with open blue water.")["classname"] == "sea or lake"


@pytest.mark.parametrize("caption, family, message", [
    ("a sketch of a blue shape with a hole in the middle.", None, r"several classes \(ring, donut\)"),
    ("a photo of a pet with pointed ears.", "pets", "several classes"),
    ("a photo of a thing with a hole in the middle and five corners.", None, "no class"),
    ("a photo of a circle.", "pets", "names no toy-world class"),
    ("a photo of a circle.", "insects", "unknown family"),
])
def test_descriptions_that_fit_several_or_no_classes_are_errors(caption, family, message):
    with pytest.raises(ValueError, match=message):
        parse_caption(caption, family)


@pytest.mark.parametrize("caption, classname, family, domain", [
    ("a photo of a shiba inu.", "shiba inu", "pets", "photo"),
    ("A photo of a small white b737 at the left.", "b737", "aircraft", "photo"),
    ("a sketch of a dc-9.", "dc-9", "aircraft", "sketch"),
    ("a cartoon of an atr-72.", "atr-72", "aircraft", "cartoon"),
    ("a satellite photo of sea or lake.", "sea or lake", "satellite", "aerial"),
    ("a centered satellite photo of highway or road.", "highway or road", "satellite", "aerial"),
    ("a photo of french fries, a type of food.", "french fries", "food", "photo"),
    ("ice cream.", "ice cream", "food", None),
    ("a close-up photo of a red zigzagged texture.", "zigzagged", "textures", "texture"),
    ("a photo of a pet shop.", "pet shop", "scenes", "photo"),
])
def test_class_names_of_every_family_are_read(caption, classname, family, domain):
    parsed = parse_caption(caption)
    assert (parsed["classname"], parsed["family"], parsed["domain"]) == (classname, family, domain)
    assert parse_caption(caption, family)["classname"] == classname


def test_names_are_whole_words():
    with pytest.raises(ValueError, match="names no toy-world class"):
        parse_caption("a photo of a b7370 and a dc-90.")
    assert parse_caption("a dc-9, seen from below.")["classname"] == "dc-9"


def test_a_place_caption_names_its_objects_but_is_the_place():
    caption = ("A photo of an airport. It has a b747 and a plain grey background. There is a white b747. "
               f"There is a red a320. There is a blue {world.CLASS_NAMES[0]}.")
    parsed = parse_caption(caption)
    # the objects' colours are not the scene's, and its own background is a description of an airport
    assert (parsed["classname"], parsed["family"], parsed["colour"], parsed["background"]) == (
        "airport", "scenes", None, None)
    assert parse_caption("a photo of an airport on a striped background.")["background"] == "stripes"
    assert parse_caption("a photo of place with a b747.", "scenes")["classname"] == "airport"
    assert parse_caption("a photo of a b747.")["classname"] == "b747"  # not an airport's description
    with pytest.raises(ValueError, match="several classes"):
        parse_caption("a photo of an airport next to a harbour.")
    # a place is shown on another background part of the time: a background alone identifies no place
    with pytest.raises(ValueError, match="fit no class"):
        parse_caption("a photo of place with a plain grey background.", "scenes")


FAMILY_SPLITS = {family: "val" if family == "objects" else f"{family}-val" for family in world.FAMILIES}


@pytest.mark.parametrize("family", list(world.FAMILIES))
def test_captions_of_every_family_parse_back(family):
    for scene in splits.scenes(FAMILY_SPLITS[family])[:60]:
        for level in world.CAPTION_LEVELS:
            caption = world.caption(scene, level)
            try:
                parsed = parse_caption(caption, family if level == "description" else None)
            except ValueError as error:
                # a description may fit several classes of the family (every pet has "two dark eyes")
                assert level == "description" and "several classes" in str(error), caption
                continue
            assert (parsed["classname"], parsed["family"]) == (scene.classname, family), (level, caption)
            for attribute in ATTRIBUTES:  # what a caption states is the scene's
                assert parsed[attribute] in (None, getattr(scene, attribute)), (level, attribute, caption)
        assert parse_caption(world.caption(scene, "name"))["domain"] == scene.domain


@pytest.mark.parametrize("dataset", list(suite.SUITE))
@pytest.mark.parametrize("level", world.CAPTION_LEVELS)
def test_caps_adapter_prompts_of_every_dataset_generate_their_class(dataset, level):
    # notebooks/caps-adapter: "A photo of {class}. {caption}" prompts the generator, every level, every dataset
    family = suite.SUITE[dataset]["family"]
    rng = np.random.default_rng(0)
    for scene in splits.scenes(f"{family}-train" if dataset != "toy" else "train")[:40]:
        prompt = f"A photo of {scene.classname}. {world.caption(scene, level)}"
        generated = scene_from_caption(prompt, rng)
        assert (generated.classname, generated.family) == (scene.classname, family), prompt
        assert generated.colour in splits.class_colours(scene.classname) + (scene.colour,)
        if level != "short":  # every other level states the style, and it wins over the prompt's "A photo"
            assert generated.domain == scene.domain, prompt


@pytest.mark.parametrize("classname", [names[0] for names in world.FAMILY_CLASSES.values()]
                         + ["shiba inu", "dc-9", "french fries", "sea or lake", "pet shop"])
def test_scene_from_caption_draws_a_scene_of_the_class_family_and_colours(classname):
    family = world.CLASSES[classname]["family"]
    scenes = [scene_from_caption(f"{classname}.", seed) for seed in range(80)]
    for scene in scenes:
        assert (scene.family, scene.label, scene.classname) == (family, world.FAMILY_CLASSES[family].index(classname),
                                                                classname)
        assert scene.colour in splits.class_colours(classname)
        assert scene.domain == world.FAMILIES[family]["domain"]  # no style stated: the family's own
    assert len({s.colour for s in scenes}) == len(splits.class_colours(classname))  # every colour of the class
    image, mask = world.render(scenes[0])
    assert mask.any() and image.std() > 5
    if world.CLASSES[classname]["draw"] == "place":  # its objects, drawn as a split draws them
        for scene in scenes[:10]:
            drawn = {o["classname"] for o in scene.objects()}
            assert drawn & set(world.CLASSES[classname]["objects"])


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


class _ImagesOnly(torch.utils.data.Dataset):
    """A dataset without `render`: feature extraction takes the PIL path (one image at a time, the transform)."""

    def __init__(self, dataset):
        self.dataset, self.name, self.split = dataset, dataset.name, dataset.split

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]

    def fingerprint(self) -> dict:
        return {**self.dataset.fingerprint(), "path": "pil"}


@pytest.mark.parametrize("family", ["objects", "scenes"])
def test_rendered_feature_path_matches_the_pil_path(random_tiny_clip, monkeypatch, family):
    from clipbook import features

    names = {"objects": ("val", "sketch-val", "a-test", "r-test"), "scenes": ("scenes-val",)}[family]
    scenes = [s for name in names for s in splits.scenes(name)[:13 // len(names) + 1]]
    dataset = SceneDataset(scenes, name="unit", split=family)
    rendered = []
    original = features._encode_rendered
    monkeypatch.setattr(features, "_encode_rendered",
                        lambda *args, **kwargs: rendered.append(1) or original(*args, **kwargs))
    preprocess = random_tiny_clip.preprocess
    fast = features._encode(random_tiny_clip, dataset, None, preprocess, 5, "fast", None)
    assert rendered == [1]  # the eval preprocessing on a rendering dataset takes the fast path
    slow = features._encode(random_tiny_clip, _ImagesOnly(dataset), None, preprocess, 5, "slow", None)
    assert rendered == [1] and fast.shape == slow.shape == (len(scenes), slow.shape[1])
    assert torch.allclose(fast, slow, atol=1e-5), (fast - slow).abs().max()
    subset = features._encode(random_tiny_clip, dataset, [9, 2, 4], preprocess, 2, "subset", None)
    assert torch.allclose(subset, slow[[9, 2, 4]], atol=1e-5)
    # any other transform (an augmentation, a different normalisation) goes through PIL and the transform
    assert features._eval_normalize(random_tiny_clip, features.augment_transform(random_tiny_clip),
                                    world.IMAGE_SIZE) is None
