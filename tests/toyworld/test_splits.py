import json
from collections import Counter

import numpy as np
import pytest

from clipbook.toyworld import splits, suite, world


def test_registry_has_the_required_splits():
    for name in ("pretrain", "train", "val", "test", "sketch-test", "noise-test", "v2-test", "a-test", "r-test",
                 "spurious-train", "spurious-test", "background-uniform-val", "background-uniform-test"):
        assert name in splits.SPLITS
    for spec in suite.SUITE.values():
        if spec["per_class"] is not None:
            for split in ("train", "val", "test"):
                assert splits.split_config(f"{spec['family']}-{split}")["family"] == spec["family"]
    shifted = {cfg["domain"] for cfg in splits.SPLITS.values()} - {"photo"}
    assert {"sketch", "noise", "cartoon", "texture", "aerial"} <= shifted


def test_scenes_are_deterministic_and_class_balanced():
    a, b = splits.scenes("val"), splits.scenes("val")
    assert a == b
    splits.scenes.cache_clear()
    assert splits.scenes("val") == a  # a pure function of the seed and the config, not of the cache
    counts = Counter(s.label for s in a)
    assert len(counts) == len(world.CLASS_NAMES) and max(counts.values()) - min(counts.values()) <= 1


@pytest.mark.parametrize("dataset", [d for d, spec in suite.SUITE.items() if spec["per_class"] is not None])
def test_suite_splits_have_their_per_class_counts_family_and_style(dataset):
    spec = suite.SUITE[dataset]
    family = spec["family"]
    seen = set()
    for split, per_class in zip(("train", "val", "test"), spec["per_class"]):
        scenes = splits.scenes(f"{family}-{split}")
        counts = Counter(s.label for s in scenes)
        assert sorted(counts) == list(range(len(world.FAMILY_CLASSES[family])))
        assert set(counts.values()) == {per_class}
        assert {s.family for s in scenes} == {family}
        assert {s.domain for s in scenes} == {world.FAMILIES[family]["domain"]}
        for s in scenes[:50]:
            assert s.colour in splits.class_colours(s.classname)
        seen |= {s.noise_seed for s in scenes}
    assert len(seen) > 0.99 * sum(spec["per_class"]) * len(world.FAMILY_CLASSES[family])  # fresh images per split


def test_pretrain_mix_follows_the_family_shares_with_a_long_tail():
    scenes = splits.scenes("pretrain")
    assert len(scenes) == suite.PRETRAIN_SIZE
    families = Counter(s.family for s in scenes)
    for family, mix in suite.PRETRAIN_MIX.items():
        assert abs(families[family] / len(scenes) - mix["share"]) < 0.01, family
        classes = Counter(s.label for s in scenes if s.family == family)
        assert len(classes) == len(world.FAMILY_CLASSES[family])  # every class is seen
        assert max(classes.values()) > 4 * min(classes.values())  # head and tail
        domains = {s.domain for s in scenes if s.family == family}
        assert domains == set(mix.get("domains", {world.FAMILIES[family]["domain"]: 1}))


def test_spurious_split_is_correlated_in_train_and_anticorrelated_in_test():
    def home_rate(name):
        return np.mean([s.background == splits.home_background(s.label) for s in splits.scenes(name)])

    assert home_rate("spurious-train") > 0.9
    assert home_rate("spurious-test") == 0.0


def test_shift_variants_differ_as_described():
    hard = splits.scenes("a-test")
    assert all(s.size == "tiny" and len(s.extras) == 1 and s.extras[0][0] != s.classname for s in hard)
    assert {s.domain for s in splits.scenes("r-test")} == {"cartoon"}
    assert np.std([s.angle for s in splits.scenes("v2-test")]) > 1.5 * np.std([s.angle for s in splits.scenes("test")])


def test_register_split_extends_the_registry_and_validates():
    splits.register_split("unit-test-sketch", domain="sketch", size=24, home_background_p=None)
    assert len(splits.scenes("unit-test-sketch")) == 24
    splits.register_split("unit-test-pets", family="pets", domain="photo", size=24, home_background_p=None)
    assert {s.family for s in splits.scenes("unit-test-pets")} == {"pets"}
    with pytest.raises(ValueError, match="unknown domain"):
        splits.register_split("bad", domain="oil-painting", size=3, home_background_p=None)
    with pytest.raises(ValueError, match="unknown family"):
        splits.register_split("bad", family="insects", domain="photo", size=3, home_background_p=None)
    with pytest.raises(ValueError, match="missing"):
        splits.register_split("bad2", domain="photo")
    with pytest.raises(KeyError, match="known splits"):
        splits.scenes("no-such-split")


def test_render_split_gives_images_and_masks():
    splits.register_split("unit-test-small", domain="photo", size=5, home_background_p=0.5)
    images, masks = splits.render_split("unit-test-small")
    assert images.shape == (5, world.IMAGE_SIZE, world.IMAGE_SIZE, 3) and masks.shape == (5, world.IMAGE_SIZE, world.IMAGE_SIZE)
    assert np.array_equal(images, world.render_batch(splits.scenes("unit-test-small"))[0])


def test_render_split_in_threaded_chunks_equals_one_batch():
    # chunks of 2 over 5 scenes: three chunks drawn in worker threads, concatenated in order
    splits.register_split("unit-test-chunks", domain="photo", size=5, home_background_p=0.5)
    images, masks = splits.render_split("unit-test-chunks", chunk=2)
    whole_images, whole_masks = world.render_batch(splits.scenes("unit-test-chunks"))
    assert np.array_equal(images, whole_images) and np.array_equal(masks, whole_masks)


def test_fingerprint_changes_with_the_pretraining_mix(monkeypatch):
    before = json.dumps(splits.fingerprint("pretrain"), sort_keys=True)  # it holds the live PRETRAIN_MIX dict
    assert "pretrain_mix" not in splits.fingerprint("val")
    monkeypatch.setitem(suite.PRETRAIN_MIX, "pets", {**suite.PRETRAIN_MIX["pets"], "name_rate": 0.1})
    assert json.dumps(splits.fingerprint("pretrain"), sort_keys=True) != before


def test_background_uniform_splits_cover_every_class_background_group():
    # 20 classes x 6 backgrounds = 120 groups of ~33 (val, 4000 images) and ~100 (test, 12000) images; each class has
    # exactly 200 / 600 images with backgrounds drawn independently, so the least group sits about four standard
    # deviations above these minimums (observed: 17 and 66)
    for name, least in (("background-uniform-val", 12), ("background-uniform-test", 60)):
        scenes = splits.scenes(name)
        counts = Counter((s.label, s.background) for s in scenes)
        assert len(counts) == len(world.CLASS_NAMES) * len(splits.BACKGROUND_NAMES) == 120
        assert sum(counts.values()) == splits.SPLITS[name]["size"]
        assert min(counts.values()) >= least
        assert {s.domain for s in scenes} == {"photo"} and {s.family for s in scenes} == {"objects"}
        # backgrounds independent of the class: the home background is no more frequent than any other
        home_rate = np.mean([s.background == splits.home_background(s.label) for s in scenes])
        assert abs(home_rate - 1 / len(splits.BACKGROUND_NAMES)) < 0.03
