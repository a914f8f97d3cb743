from collections import Counter

import numpy as np
import pytest

from clipbook.toyworld import splits, world


def test_registry_has_the_required_splits():
    for name in ("train", "val", "test", "sketch-test", "noise-test", "spurious-train", "spurious-test"):
        assert name in splits.SPLITS
    shifted = {cfg["domain"] for cfg in splits.SPLITS.values()} - {"photo"}
    assert len(shifted) >= 2


def test_scenes_are_deterministic_and_class_balanced():
    a, b = splits.scenes("val"), splits.scenes("val")
    assert a == b
    counts = Counter(s.label for s in a)
    assert len(counts) == len(world.CLASS_NAMES) and max(counts.values()) - min(counts.values()) <= 1


def test_spurious_split_is_correlated_in_train_and_anticorrelated_in_test():
    def home_rate(name):
        return np.mean([s.background == splits.home_background(s.label) for s in splits.scenes(name)])

    assert home_rate("spurious-train") > 0.9
    assert home_rate("spurious-test") == 0.0


def test_register_split_extends_the_registry_and_validates():
    splits.register_split("unit-test-sketch", domain="sketch", size=24, home_background_p=None)
    assert len(splits.scenes("unit-test-sketch")) == 24
    with pytest.raises(ValueError, match="unknown domain"):
        splits.register_split("bad", domain="oil-painting", size=3, home_background_p=None)
    with pytest.raises(ValueError, match="missing"):
        splits.register_split("bad2", domain="photo")
    with pytest.raises(KeyError, match="known splits"):
        splits.scenes("no-such-split")


def test_render_split_gives_images_and_masks():
    splits.register_split("unit-test-small", domain="photo", size=5, home_background_p=0.5)
    images, masks = splits.render_split("unit-test-small")
    assert images.shape == (5, world.IMAGE_SIZE, world.IMAGE_SIZE, 3) and masks.shape == (5, world.IMAGE_SIZE, world.IMAGE_SIZE)


def test_background_uniform_splits_cover_every_class_background_group():
    for name, least in (("background-uniform-val", 20), ("background-uniform-test", 70)):
        scenes = splits.scenes(name)
        counts = Counter((s.label, s.background) for s in scenes)
        assert len(counts) == len(world.CLASS_NAMES) * len(splits.BACKGROUND_NAMES)
        assert min(counts.values()) >= least
        assert {s.domain for s in scenes} == {"photo"}
        # backgrounds independent of the class: the home background is no more frequent than any other
        home_rate = np.mean([s.background == splits.home_background(s.label) for s in scenes])
        assert abs(home_rate - 1 / len(splits.BACKGROUND_NAMES)) < 0.03
