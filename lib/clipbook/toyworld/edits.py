"""Scene edits: pairs of toy-world scenes that differ in exactly one attribute, with the edit's text.

Text-guided editing papers (DeltaEdit / DeltaSpace, StyleCLIP) pair an image with an edited image and a source
text with a target text ("red" → "blue"). Real benchmarks can only *ask* a generator for the edit and hope nothing
else moved; the toy world makes the edit exactly: the target scene is `dataclasses.replace` of the source on one
field, noise seed, pose jitter and every other attribute kept, so any difference between the two images is the
edit. The ground truth of an editing method is then the target scene itself.

    edits = sample_edits(toy_splits.scenes("test"), seed=0)       # one Edit per scene, attribute drawn per scene
    edits[0].attribute, edits[0].source_phrase, edits[0].target_phrase   # "colour", "red", "blue"
    edits[0].source_text, edits[0].target_text                     # the two scenes' medium captions
    name = edit_split("test", seed=0)        # registered split of the target scenes, same order (for features)

Attributes (`ATTRIBUTES`): colour, size, position, background and class (a class of the same family). Values
are those the registered splits of the family draw (`attribute_values`), so an edit never leaves the world's
distribution. Everything is a pure function of (scenes, attributes, seed).
"""
from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from clipbook.toyworld import splits as toy_splits
from clipbook.toyworld.world import BACKGROUNDS, CLASSES, FAMILY_CLASSES, POSITIONS, Scene, caption

# Bump when an edit's sampling or text changes: it is part of every edit split's fingerprint.
EDITS_VERSION = "1"
ATTRIBUTES: tuple[str, ...] = ("colour", "size", "position", "background", "class")
# Families whose scenes have one main object whose attributes the medium caption names.
EDITABLE_DRAWS = ("shape", "pet", "aircraft", "flower", "food")
# Sizes the registered splits draw (`splits.sample_scene`); "tiny" only appears in the shifted "hard" variant.
EDIT_SIZES = ("small", "large")


@dataclass(frozen=True)
class Edit:
    """One edit: `target` is `source` with exactly `attribute` changed from `source_value` to `target_value`."""
    source: Scene
    target: Scene
    attribute: str
    source_value: str
    target_value: str

    @property
    def source_phrase(self) -> str:
        """The edited attribute of the source in words ("red", "small", "at the left", "a striped background")."""
        return attribute_phrase(self.attribute, self.source_value)

    @property
    def target_phrase(self) -> str:
        return attribute_phrase(self.attribute, self.target_value)

    @property
    def source_text(self) -> str:
        """The source scene's medium caption (names class, colour, size, position and background)."""
        return caption(self.source, "medium")

    @property
    def target_text(self) -> str:
        """The target scene's medium caption: equal to `source_text` but for the edited words."""
        return caption(self.target, "medium")


def _check_editable(scene: Scene) -> None:
    draw = CLASSES[scene.classname]["draw"]
    if draw not in EDITABLE_DRAWS:
        raise ValueError(f"edits need a scene with one main object; {scene.classname!r} of family {scene.family!r} "
                         f"is drawn as {draw!r} (editable: {', '.join(EDITABLE_DRAWS)})")


def attribute_value(scene: Scene, attribute: str) -> str:
    """The scene's value of an edit attribute ("class" is the class name)."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown edit attribute {attribute!r}; known: {', '.join(ATTRIBUTES)}")
    return scene.classname if attribute == "class" else getattr(scene, attribute)


def attribute_values(scene: Scene, attribute: str) -> tuple[str, ...]:
    """Every value the attribute can take for this scene in the world's splits (the scene's own included).
    A class is one of the same family drawn in the scene's colour, so a class edit changes nothing else."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown edit attribute {attribute!r}; known: {', '.join(ATTRIBUTES)}")
    if attribute == "colour":
        return toy_splits.class_colours(scene.classname)
    if attribute == "size":
        return EDIT_SIZES
    if attribute == "position":
        return tuple(POSITIONS)
    if attribute == "background":
        return tuple(BACKGROUNDS)
    return tuple(name for name in FAMILY_CLASSES[scene.family]
                 if scene.colour in toy_splits.class_colours(name))


def attribute_phrase(attribute: str, value: str) -> str:
    """An attribute value in the words the captions use ("at the left", "a dotted background")."""
    if attribute == "position":
        return "in the centre" if value == "centre" else f"at the {value}"
    if attribute == "background":
        return BACKGROUNDS[value]["phrase"]
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown edit attribute {attribute!r}; known: {', '.join(ATTRIBUTES)}")
    return value


def edit_scene(scene: Scene, attribute: str, value: str) -> Scene:
    """The scene with exactly one attribute set to `value` (noise seed, jitter, extras and the rest kept).

    Args:
        scene: a scene with one main object (`EDITABLE_DRAWS`).
        attribute: one of `ATTRIBUTES`.
        value: one of `attribute_values(scene, attribute)`.
    """
    _check_editable(scene)
    allowed = attribute_values(scene, attribute)
    if value not in allowed:
        raise ValueError(f"unknown value {value!r} of {attribute!r} for a {scene.colour} {scene.classname}; "
                         f"known: {', '.join(allowed)}")
    if attribute == "class":
        return dataclasses.replace(scene, label=FAMILY_CLASSES[scene.family].index(value))
    return dataclasses.replace(scene, **{attribute: value})


def sample_edits(scenes: Sequence[Scene], attributes: Sequence[str] = ATTRIBUTES, seed: int = 0) -> list[Edit]:
    """One edit per scene: an attribute drawn uniformly from `attributes`, then a new value uniformly from the
    attribute's other values (`attribute_values`). Deterministic in (scenes, attributes, seed).

    Args:
        scenes: source scenes with one main object each.
        attributes: which attributes may be edited (a subset of `ATTRIBUTES`, in any order).
        seed: the edits' own generator seed.

    Returns:
        A list of `Edit`, in the order of `scenes`.
    """
    attributes = tuple(attributes)
    unknown = [a for a in attributes if a not in ATTRIBUTES]
    if not attributes or unknown:
        raise ValueError(f"unknown edit attributes {unknown or attributes!r}; known: {', '.join(ATTRIBUTES)}")
    rng = np.random.default_rng([int(seed), zlib.crc32(",".join(attributes).encode())])
    edits = []
    for scene in scenes:
        _check_editable(scene)
        attribute = attributes[int(rng.integers(len(attributes)))]
        current = attribute_value(scene, attribute)
        others = [v for v in attribute_values(scene, attribute) if v != current]
        draw = int(rng.integers(1 << 30))  # drawn even when there is no choice, so later scenes keep their draws
        if not others:
            raise ValueError(f"no other value of {attribute!r} for a {scene.colour} {scene.classname}")
        value = others[draw % len(others)]
        edits.append(Edit(scene, edit_scene(scene, attribute, value), attribute, current, value))
    return edits


def _derive_edit(base: tuple[Scene, ...], name: str, config: dict) -> tuple[Scene, ...]:
    return tuple(edit.target for edit in sample_edits(base, config["attributes"], config["seed"]))


toy_splits.register_derivation("edit", _derive_edit)


def edit_split(base: str, attributes: Sequence[str] = ATTRIBUTES, seed: int = 0) -> str:
    """Register (idempotently) and return the split "<base>@edit=<attributes>:<seed>": the targets of
    `sample_edits(scenes(base), attributes, seed)`, in the base split's order, so image i of the two splits is
    the pair of edit i. A registered split gets the library's dataset, fingerprint and feature cache unchanged."""
    attributes = list(attributes)
    sample_edits(toy_splits.scenes(base)[:1], attributes, seed)  # validates the arguments before registering
    config = toy_splits.split_config(base)
    name = f"{base}@edit={','.join(attributes)}:{int(seed)}"
    derived = {key: config[key] for key in ("family", "home_background_p") if key in config}
    toy_splits.register_split(name, **derived, domain=config["domain"], size=config["size"], derived_from=base,
                              derivation="edit", attributes=attributes, seed=int(seed), edits_version=EDITS_VERSION,
                              purpose=f"{base} with one attribute of each scene edited ({', '.join(attributes)})")
    return name


def split_edits(name: str) -> list[Edit]:
    """The edits of an edit split (`edit_split`): sources from its base split, targets its own scenes."""
    config = toy_splits.split_config(name)
    if config.get("derivation") != "edit":
        raise ValueError(f"split {name!r} is not an edit split")
    return sample_edits(toy_splits.scenes(config["derived_from"]), config["attributes"], config["seed"])
