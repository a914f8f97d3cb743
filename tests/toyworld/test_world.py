import re

import numpy as np
import pytest

from clipbook.toyworld import splits, world


def _scene(**overrides):
    base = dict(label=0, colour="red", size="large", position="centre", background="plain", domain="photo",
                angle=0.0, dx=0.0, dy=0.0, noise_seed=1)
    return world.Scene(**{**base, **overrides})


def _class_scene(classname: str, **overrides) -> world.Scene:
    """A plain, centred scene of any class; a place gets its objects as a split draws them."""
    family = world.CLASSES[classname]["family"]
    label = world.FAMILY_CLASSES[family].index(classname)
    if world.CLASSES[classname]["draw"] == "place":
        drawn = next(s for s in splits.scenes("scenes-val") if s.label == label)
        return world.Scene(**{**drawn.to_dict(), **overrides})
    return _scene(label=label, family=family, domain=world.FAMILIES[family]["domain"], **overrides)


def test_vocabulary_has_every_family_and_descriptions():
    assert len(world.CLASSES) >= 100 and len(world.FAMILIES) == 8
    assert world.CLASS_NAMES == world.FAMILY_CLASSES["objects"] and len(world.CLASS_NAMES) == 20
    assert sum(len(names) for names in world.FAMILY_CLASSES.values()) == len(world.CLASSES)
    assert all(len(spec["descriptions"]) >= 2 for spec in world.CLASSES.values())
    assert all(spec["family"] in world.FAMILIES for spec in world.CLASSES.values())


@pytest.mark.parametrize("classname", [c for c, spec in world.CLASSES.items() if spec["draw"] == "shape"])
def test_every_generic_class_renders_a_visible_object_with_its_colour(classname):
    image, mask = world.render(_class_scene(classname))
    assert image.shape == (world.IMAGE_SIZE, world.IMAGE_SIZE, 3) and image.dtype == np.uint8
    assert 0.03 < mask.mean() < 0.6
    inside = image[mask].astype(float).mean(axis=0)
    assert np.abs(inside - np.array(world.COLOURS["red"])).max() < 60


@pytest.mark.parametrize("classname", [c for c, spec in world.CLASSES.items()
                                       if spec["draw"] in ("pet", "aircraft", "flower", "food")])
def test_every_drawn_class_renders_a_visible_object_in_its_colour(classname):
    # pets, aircraft, flowers and dishes add dark or accent parts (eyes, engines, centres, toppings) and photos vary
    # in exposure, so the check is that the object stands out and its body takes the scene's colour
    first, second = splits.class_colours(classname)[:2]
    image, mask = world.render(_class_scene(classname, colour=first))
    other, other_mask = world.render(_class_scene(classname, colour=second))
    assert 0.03 < mask.mean() < 0.6, mask.mean()
    assert np.array_equal(mask, other_mask) and np.array_equal(image[~mask], other[~mask])
    recoloured = np.abs(image[mask].astype(int) - other[mask].astype(int)).max(axis=1) > 40
    assert recoloured.mean() > 0.3, recoloured.mean()
    background = image[~mask].astype(float).mean(axis=0)
    assert (np.abs(image[mask].astype(float) - background).max(axis=1) > 40).mean() > 0.5  # stands out


@pytest.mark.parametrize("classname", [c for c, spec in world.CLASSES.items() if spec["draw"] in ("texture", "land")])
def test_every_texture_and_land_use_class_fills_the_frame_with_a_pattern(classname):
    image, mask = world.render(_class_scene(classname))
    assert mask.all()  # a surface or a piece of land fills the frame
    assert image.reshape(-1, 3).astype(float).std(axis=0).mean() > 5  # a visible pattern, not a flat fill
    assert np.abs(image.astype(float) - world._background_image("plain", world.IMAGE_SIZE) * 255).mean() > 15


@pytest.mark.parametrize("classname", world.FAMILY_CLASSES["scenes"])
def test_every_place_renders_its_objects(classname):
    spec = world.CLASSES[classname]
    label = world.FAMILY_CLASSES["scenes"].index(classname)
    for scene in [s for s in splits.scenes("scenes-val") if s.label == label][:4]:
        _, mask = world.render(scene)
        assert 0.05 < mask.mean() < 0.7
        drawn = [o["classname"] for o in scene.objects()]
        assert len(drawn) >= 2 and set(drawn) & set(spec["objects"])  # at least one of its own objects
        assert all(d in spec["objects"] or d in world.CLASS_NAMES for d in drawn)  # the others: generic distractors
        assert all(a["mask"].any() for a in world.annotations(scene))


def test_rendering_is_deterministic_and_noise_seed_matters():
    a, _ = world.render(_scene())
    b, _ = world.render(_scene())
    c, _ = world.render(_scene(noise_seed=2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    forest = _class_scene("forest")
    assert np.array_equal(world.render(forest)[0], world.render(forest)[0])
    assert not np.array_equal(world.render(forest)[0], world.render(_class_scene("forest", noise_seed=5000))[0])


def _mixed_scenes() -> list[world.Scene]:
    """Scenes of every family, domain and shift variant, interleaved, several sharing a class and size."""
    mixed = list(splits.scenes("pretrain")[:40])
    for name in ("val", "sketch-val", "noise-val", "a-test", "r-test", "v2-test", "textures-val", "satellite-val",
                 "scenes-val", "pets-val"):
        mixed += splits.scenes(name)[:6]
    return [mixed[i] for i in np.random.default_rng(0).permutation(len(mixed))]


def test_render_is_the_same_scene_inside_any_batch():
    scenes = _mixed_scenes()
    assert len({s.family for s in scenes}) == len(world.FAMILIES)
    assert len({s.domain for s in scenes}) == len(world.DOMAINS)
    images, masks = world.render_batch(scenes)
    for i, scene in enumerate(scenes):
        image, mask = world.render(scene)
        assert np.array_equal(image, images[i]) and np.array_equal(mask, masks[i]), (i, scene)
    half, _ = world.render_batch(scenes[::2])
    assert np.array_equal(half, images[::2])


def test_classes_have_distinct_silhouettes():
    masks = [world.render(_scene(label=i))[1] for i in range(len(world.CLASS_NAMES))]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            iou = (masks[i] & masks[j]).sum() / (masks[i] | masks[j]).sum()
            assert iou < 0.9, (world.CLASS_NAMES[i], world.CLASS_NAMES[j], iou)


def test_domains_differ_visibly():
    photo, _ = world.render(_scene())
    sketch, _ = world.render(_scene(domain="sketch"))
    noise, _ = world.render(_scene(domain="noise"))
    cartoon, _ = world.render(_scene(domain="cartoon"))
    assert sketch.std(axis=2).mean() < 3  # sketches are grey: no colour
    assert np.abs(photo.astype(int) - noise.astype(int)).mean() > 10
    assert np.abs(photo.astype(int) - cartoon.astype(int)).mean() > 10
    assert (cartoon.max(axis=2) < 60).mean() > 0.02  # a thick dark outline


def test_place_annotations_give_one_disjoint_mask_box_and_phrase_per_object():
    for scene in splits.scenes("scenes-val")[:48]:
        annotations = world.annotations(scene)
        objects = scene.objects()
        assert len(annotations) == len(objects) >= 2
        _, union = world.render(scene)
        covered = np.zeros_like(union)
        for annotation, obj in zip(annotations, objects):
            mask, (x0, y0, x1, y1) = annotation["mask"], annotation["box"]
            assert annotation["classname"] == obj["classname"]
            assert mask.any() and not (mask & covered).any()  # visible and not shared with another object
            ys, xs = np.nonzero(mask)
            assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
            assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)  # the tightest box
            assert re.search(rf"\b{re.escape(obj['classname'])}\b", annotation["phrase"])
            covered |= mask
        assert np.array_equal(covered, union)  # together the objects are the scene's mask


def test_single_object_annotations_are_the_scene_mask():
    scene = _scene(label=world.CLASS_NAMES.index("heart"))
    (annotation,) = world.annotations(scene)
    assert np.array_equal(annotation["mask"], world.render(scene)[1]) and annotation["phrase"] == "a red heart"
    assert world.annotations(_class_scene("forest")) == []


def test_caption_levels():
    scene = _scene(label=world.CLASS_NAMES.index("star"), colour="green", position="left")
    assert world.caption(scene, "name") == "a photo of a star."
    assert world.caption(scene, "short") == "a green star."
    assert "at the left" in world.caption(scene, "medium")
    long = world.caption(scene, "long")
    assert long.count(".") >= 4 and "star" in long
    description = world.caption(scene, "description")
    assert "star" not in description and any(d in description for d in world.CLASSES["star"]["descriptions"])
    with pytest.raises(KeyError, match="unknown caption level"):
        world.caption(scene, "poem")


@pytest.mark.parametrize("family", list(world.FAMILIES))
def test_caption_levels_of_every_family_name_the_class_and_its_style(family):
    for scene in splits.scenes("val" if family == "objects" else f"{family}-val")[:30]:
        for level in ("name", "short", "medium", "long"):
            assert re.search(rf"\b{re.escape(scene.classname)}\b", world.caption(scene, level)), level
        assert world.caption(scene, "name").startswith(world.DOMAINS[scene.domain]["word"])
        description = world.caption(scene, "description")
        assert any(d in description for d in world.CLASSES[scene.classname]["descriptions"])


def test_visual_words_name_what_is_drawn_and_not_the_caption_templates():
    vocabulary = world.visual_words()
    assert {"red", "large", "circle", "disc", "petals", "cat", "background", "b737"} <= vocabulary
    assert all(word in vocabulary for name in world.CLASSES for word in re.findall(r"[a-z0-9]+", name))
    # template words of the captions ("a photo of", "a sketch of") and the rendering domains name nothing drawn
    assert not {"photo", "sketch", "cartoon", "picture", "image"} & vocabulary
