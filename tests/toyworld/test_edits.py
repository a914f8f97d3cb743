import dataclasses

import numpy as np
import pytest

from clipbook.toyworld import edits as toy_edits
from clipbook.toyworld import splits as toy_splits
from clipbook.toyworld.world import render_batch

FIELDS = [f.name for f in dataclasses.fields(toy_splits.scenes("test")[0])]


def _changed_fields(a, b):
    return [name for name in FIELDS if getattr(a, name) != getattr(b, name)]


def test_each_edit_changes_exactly_its_field():
    edits = toy_edits.sample_edits(toy_splits.scenes("test")[:300], seed=3)
    field = {"colour": "colour", "size": "size", "position": "position", "background": "background",
             "class": "label"}
    for edit in edits:
        assert _changed_fields(edit.source, edit.target) == [field[edit.attribute]]
        assert toy_edits.attribute_value(edit.source, edit.attribute) == edit.source_value
        assert toy_edits.attribute_value(edit.target, edit.attribute) == edit.target_value
        assert edit.source_value != edit.target_value
    assert {e.attribute for e in edits} == set(toy_edits.ATTRIBUTES)


def test_edits_are_deterministic_and_seeded():
    scenes = toy_splits.scenes("test")[:100]
    assert toy_edits.sample_edits(scenes, seed=1) == toy_edits.sample_edits(scenes, seed=1)
    assert toy_edits.sample_edits(scenes, seed=1) != toy_edits.sample_edits(scenes, seed=2)


def test_texts_differ_only_in_the_edited_words():
    for edit in toy_edits.sample_edits(toy_splits.scenes("test")[:200], seed=0):
        assert edit.source_phrase in edit.source_text and edit.target_phrase in edit.target_text
        assert edit.source_text.replace(edit.source_phrase, edit.target_phrase, 1) == edit.target_text


def test_images_differ_only_where_the_edit_acts():
    """Same noise seed and jitter: a background edit leaves the object's pixels alone, a colour edit the
    background's."""
    scene = toy_splits.scenes("test")[0]
    colour = next(c for c in toy_edits.attribute_values(scene, "colour") if c != scene.colour)
    background = next(b for b in toy_edits.attribute_values(scene, "background") if b != scene.background)
    (source, recoloured, moved), masks = render_batch(
        [scene, toy_edits.edit_scene(scene, "colour", colour), toy_edits.edit_scene(scene, "background", background)])
    assert (source != recoloured).any(axis=-1)[~masks[0]].mean() < 0.05
    assert (source != moved).any(axis=-1)[masks[0]].mean() < 0.2
    assert (source != moved).any(axis=-1)[~masks[0]].mean() > 0.5


def test_attribute_selection_and_errors():
    scenes = toy_splits.scenes("test")[:50]
    assert {e.attribute for e in toy_edits.sample_edits(scenes, ["size"], seed=0)} == {"size"}
    with pytest.raises(ValueError, match="unknown edit attributes"):
        toy_edits.sample_edits(scenes, ["shape"])
    with pytest.raises(ValueError, match="unknown value 'violet'"):
        toy_edits.edit_scene(scenes[0], "colour", "violet")
    land = toy_splits.scenes("satellite-test")[0]
    with pytest.raises(ValueError, match="one main object"):
        toy_edits.edit_scene(land, "colour", "red")


def test_edit_split_pairs_with_its_base_in_order():
    name = toy_edits.edit_split("val", seed=5)
    assert toy_edits.edit_split("val", seed=5) == name
    targets = toy_splits.scenes(name)
    edits = toy_edits.split_edits(name)
    assert len(targets) == len(toy_splits.scenes("val"))
    assert [e.target for e in edits] == list(targets)
    assert [e.source for e in edits] == list(toy_splits.scenes("val"))
    assert toy_splits.fingerprint(name)["derived_from"] == toy_splits.fingerprint("val")
    with pytest.raises(ValueError, match="not an edit split"):
        toy_edits.split_edits("val")


def test_class_edits_stay_in_the_family():
    for edit in toy_edits.sample_edits(toy_splits.scenes("pets-test")[:80], ["class"], seed=0):
        assert edit.target.family == edit.source.family == "pets"
        assert edit.target.colour in toy_splits.class_colours(edit.target.classname)
    assert np.all([e.target.label != e.source.label for e in
                   toy_edits.sample_edits(toy_splits.scenes("test")[:40], ["class"], seed=0)])
