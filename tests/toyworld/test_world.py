import numpy as np
import pytest

from clipbook.toyworld import world


def _scene(**overrides):
    base = dict(label=0, colour="red", size="large", position="centre", background="plain", domain="photo",
                angle=0.0, dx=0.0, dy=0.0, noise_seed=1)
    return world.Scene(**{**base, **overrides})


def test_vocabulary_has_at_least_ten_classes_with_descriptions():
    assert len(world.CLASS_NAMES) >= 10
    assert all(len(spec["descriptions"]) >= 2 for spec in world.CLASSES.values())


@pytest.mark.parametrize("label", range(len(world.CLASS_NAMES)))
def test_every_class_renders_a_visible_object_with_its_colour(label):
    image, mask = world.render(_scene(label=label))
    assert image.shape == (world.IMAGE_SIZE, world.IMAGE_SIZE, 3) and image.dtype == np.uint8
    assert 0.03 < mask.mean() < 0.6
    inside = image[mask].astype(float).mean(axis=0)
    assert np.abs(inside - np.array(world.COLOURS["red"])).max() < 60


def test_rendering_is_deterministic_and_noise_seed_matters():
    a, _ = world.render(_scene())
    b, _ = world.render(_scene())
    c, _ = world.render(_scene(noise_seed=2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


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
    assert sketch.std(axis=2).mean() < 3  # sketches are grey: no colour
    assert np.abs(photo.astype(int) - noise.astype(int)).mean() > 10


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
