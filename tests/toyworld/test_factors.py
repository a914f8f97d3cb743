import dataclasses

import numpy as np
import pytest

from clipbook.data.toy import ToyDataset
from clipbook.toyworld import factors, splits, world

BASE = "val"  # 600 generic-family scenes


def _changed_fields(a: world.Scene, b: world.Scene) -> set[str]:
    return {f.name for f in dataclasses.fields(world.Scene) if getattr(a, f.name) != getattr(b, f.name)}


@pytest.mark.parametrize("factor, value, fields", [
    ("size", "tiny", {"size"}), ("background", "waves", {"background"}), ("domain", "sketch", {"domain"}),
    ("colour", "brown", {"colour"}), ("pose", 1.2, {"angle"}), ("position", "left", {"position"}),
])
def test_a_shift_changes_only_its_factor(factor, value, fields):
    name = factors.shift_split(BASE, factor, value)
    base, shifted = splits.scenes(BASE), splits.scenes(name)
    assert len(base) == len(shifted)
    changed = set().union(*(_changed_fields(a, b) for a, b in zip(base, shifted)))
    assert changed == fields


def test_shift_values_are_set_and_pose_is_added():
    name = factors.shift_split(BASE, "pose", 0.5)
    for a, b in zip(splits.scenes(BASE), splits.scenes(name)):
        assert b.angle == pytest.approx(a.angle + 0.5)
    assert {s.size for s in splits.scenes(factors.shift_split(BASE, "size", "tiny"))} == {"tiny"}


def test_a_corner_moves_the_object_off_centre_and_changes_pixels():
    name = factors.shift_split(BASE, "position", "top-left")
    scenes = splits.scenes(name)
    assert {(s.position, round(s.dx, 6), round(s.dy, 6)) for s in scenes} == {("centre", -0.3, -0.3)}
    before, _ = world.render(splits.scenes(BASE)[0])
    after, mask = world.render(scenes[0])
    assert not np.array_equal(before, after)
    assert mask[:32, :32].sum() > mask[32:, 32:].sum()  # the object sits in the top-left quadrant


def test_shifted_split_is_a_toy_dataset_with_its_own_fingerprint():
    name = factors.shift_split(BASE, "size", "large")
    dataset = ToyDataset(name)
    assert len(dataset) == len(ToyDataset(BASE))
    np.testing.assert_array_equal(dataset.labels, ToyDataset(BASE).labels)
    fingerprint = dataset.fingerprint()
    assert fingerprint["factor"] == "size" and fingerprint["value"] == "large"
    assert fingerprint["derived_from"] == splits.fingerprint(BASE)
    assert fingerprint != ToyDataset(factors.shift_split(BASE, "size", "small")).fingerprint()


def test_derived_splits_are_deterministic_and_idempotent():
    name = factors.cue_conflict_split(BASE)
    assert factors.cue_conflict_split(BASE) == name
    first = splits.scenes(name)
    splits.scenes.cache_clear()
    assert splits.scenes(name) == first
    assert factors.shift_split(BASE, "pose", 1) == factors.shift_split(BASE, "pose", 1.0)


def test_cue_conflicts_have_different_shape_and_cue_labels():
    name = factors.cue_conflict_split(BASE, classes=range(6))
    shape, cue = factors.shape_labels(name), factors.cue_labels(name)
    assert len(shape) == sum(s.label < 6 for s in splits.scenes(BASE)) == splits.split_config(name)["size"]
    assert set(shape) <= set(range(6)) and set(cue) <= set(range(6))
    assert (shape != cue).all()
    for scene, c in zip(splits.scenes(name), cue):
        assert scene.background == splits.home_background(int(c))
    # every other cue class is used for each shape (uniform draws)
    assert len(set(zip(shape.tolist(), cue.tolist()))) == 6 * 5
    # the shape is untouched: only the background differs from the base scene
    base = [s for s in splits.scenes(BASE) if s.label < 6]
    assert set().union(*(_changed_fields(a, b) for a, b in zip(base, splits.scenes(name)))) == {"background"}


def test_cue_conflict_rejects_classes_sharing_a_home_and_other_families():
    with pytest.raises(ValueError, match="share home backgrounds"):
        factors.cue_conflict_split(BASE, classes=[0, 6])
    with pytest.raises(ValueError, match="generic family"):
        factors.cue_conflict_split("pets-val")
    with pytest.raises(ValueError, match="unknown cue 'texture'"):
        factors.cue_conflict_split(BASE, cue="texture")
    with pytest.raises(ValueError, match="not a cue-conflict split"):
        factors.cue_labels(BASE)


def test_bad_factors_and_values_are_named():
    with pytest.raises(ValueError, match="unknown factor 'light'"):
        factors.shift_split(BASE, "light", 1)
    with pytest.raises(ValueError, match="unknown value 'huge' of factor 'size'"):
        factors.shift_split(BASE, "size", "huge")
    with pytest.raises(TypeError, match="finite number"):
        factors.shift_split(BASE, "pose", "left")
    with pytest.raises(ValueError, match="main object"):
        factors.shift_scene(splits.scenes("textures-val")[0], "size", "tiny")


def test_group_labels():
    groups = factors.group_labels(BASE, "background")
    scene = splits.scenes(BASE)[0]
    assert groups[0] == f"{scene.classname} / {scene.background}"
    home = factors.group_labels(BASE, "home")
    assert set(g.split(" / ")[1] for g in home) == {"home", "away"}
    with pytest.raises(ValueError, match="unknown group attribute"):
        factors.group_labels(BASE, "mood")
