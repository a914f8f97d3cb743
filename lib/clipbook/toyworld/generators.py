"""Toy text-to-image generators with known failure modes, for prompt-aware diversity metrics.

Papers that score a text-to-image model's diversity *given its prompts* (the Schur-complement entropy of
"Dissecting CLIP", Scendi) need image sets whose prompt-following is known. The toy world renders a caption
exactly (`text_to_image.scene_from_caption`), so a generator here is that renderer with each attribute the
caption states either followed, ignored in favour of one fixed value (mode collapse: the text-driven diversity
is missing), or ignored in favour of a random value (the diversity is there but no longer follows the text):

    prompts = prompt_captions(200, seed=1)                        # "a photo of a small red circle at the left ..."
    images, paired = generate(prompts, "ignores-colour", images_per_prompt=4, seed=1)
    # images: a SceneDataset of 800 scenes; paired[i] is the prompt image i was generated from

Every generator of one seed draws the same jitter, noise and unstated attributes for image (prompt p, copy j),
so two generators differ only in how they treat the attribute they ignore (a paired comparison).
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np

from clipbook.toyworld import splits, world
from clipbook.toyworld.text_to_image import SceneDataset, parse_caption

# Attributes a generator can follow or ignore, the values it draws when it ignores one at random (for a
# free-coloured class; a class with its own colours draws among them), and the single value a collapsed
# generator always renders.
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "colour": world.FREE_COLOURS, "size": ("small", "large"), "position": tuple(world.POSITIONS),
    "background": tuple(world.BACKGROUNDS),
}
FIXED_VALUES = {"colour": "red", "size": "small", "position": "centre", "background": "plain"}
BEHAVIOURS = ("prompt", "fixed", "random")

# name -> {attribute: behaviour} (attributes not named follow the prompt), "shuffle": the prompts are paired with
# images of other prompts (a generator that ignores its prompt entirely), and a description.
GENERATORS: dict[str, dict] = {
    "faithful": {"description": "follows every attribute the prompt states"},
    "ignores-colour": {"colour": "fixed", "description": "always draws a red object, whatever colour is asked for"},
    "ignores-background": {"background": "fixed",
                           "description": "always draws the plain background, whatever background is asked for"},
    "random-colour": {"colour": "random",
                      "description": "draws the object's colour at random, independently of the prompt"},
    "random-background": {"background": "random",
                          "description": "draws the background at random, independently of the prompt"},
    "ignores-prompt": {"shuffle": True,
                       "description": "renders a random permutation of the prompts: each image follows another "
                                      "prompt than the one it is paired with"},
}


def _check_generator(name: str) -> dict:
    if name not in GENERATORS:
        raise KeyError(f"unknown generator {name!r}; known: {', '.join(GENERATORS)}")
    return GENERATORS[name]


def prompt_scenes(count: int, seed: int, family: str = "objects") -> list[world.Scene]:
    """`count` prompt scenes of a family's classes (classes uniform, every attribute as a toy split draws it,
    backgrounds uniform), from `seed`."""
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    rng = np.random.default_rng([seed, 1515])
    classes = world.FAMILY_CLASSES[family]
    labels = rng.integers(len(classes), size=count)
    return [splits.sample_scene(rng, family, int(label), world.FAMILIES[family]["domain"], None, None)
            for label in labels]


def prompt_captions(count: int, seed: int, family: str = "objects") -> list[str]:
    """The prompts: the 'medium' captions of `prompt_scenes` (they state class, colour, size, position and
    background: "a photo of a large green trapezoid at the top on a grainy brown background.")."""
    return [world.caption(scene, "medium") for scene in prompt_scenes(count, seed, family)]


@lru_cache(maxsize=16384)
def _parsed(caption: str, family: str | None) -> dict:
    """parse_caption, memoised: every generator of a comparison parses the same prompts (read-only use)."""
    return parse_caption(caption, family)


def _render_stated(stated: dict, rng: np.random.Generator) -> world.Scene:
    """`text_to_image.scene_from_caption` with the caption already parsed (parsing dominates its cost, and a
    generator renders each prompt several times); the tests check that both give the same scene."""
    family = stated["family"]
    drawn = splits.sample_scene(rng, family, world.FAMILY_CLASSES[family].index(stated["classname"]),
                                stated["domain"] or world.FAMILIES[family]["domain"], None, None)
    return replace(drawn, **{a: stated[a] for a in ("colour", "size", "position", "background") if stated[a]})


def _ignore(scene: world.Scene, behaviours: dict[str, str], rng: np.random.Generator) -> world.Scene:
    changes = {}
    for attribute, values in ATTRIBUTE_VALUES.items():
        choice = values[int(rng.integers(len(values)))]  # drawn for every attribute, so streams stay paired
        behaviour = behaviours.get(attribute, "prompt")
        if behaviour == "fixed":
            changes[attribute] = FIXED_VALUES[attribute]
        elif behaviour == "random":
            changes[attribute] = choice
    if "colour" in changes and world.CLASSES[scene.classname]["colour"] is not None:
        own = splits.class_colours(scene.classname)
        changes["colour"] = own[0] if behaviours.get("colour") == "fixed" else own[int(rng.integers(len(own)))]
    return replace(scene, **changes)


def generate(prompts: list[str], generator: str, *, images_per_prompt: int, seed: int,
             family: str | None = "objects") -> tuple[SceneDataset, list[str]]:
    """Images of `prompts` by a toy generator (`GENERATORS`).

    Args:
        prompts: toy-world captions (e.g. `prompt_captions`).
        generator: a `GENERATORS` name.
        images_per_prompt: images drawn per prompt (a T2I evaluation draws several per prompt).
        seed: the generation seed; image (p, j) is drawn from seed [seed, p, j] by every generator.
        family: the prompts' family (see `text_to_image.parse_caption`).

    Returns:
        (the images as a SceneDataset, in prompt-major order; the prompt paired with each image).
    """
    spec = _check_generator(generator)
    if images_per_prompt < 1:
        raise ValueError(f"images_per_prompt must be positive, got {images_per_prompt}")
    behaviours = {a: b for a, b in spec.items() if a in ATTRIBUTE_VALUES}
    bad = {a: b for a, b in behaviours.items() if b not in BEHAVIOURS}
    if bad:
        raise ValueError(f"generator {generator!r}: unknown behaviours {bad}; known: {', '.join(BEHAVIOURS)}")
    source = list(prompts)
    if spec.get("shuffle"):
        source = [prompts[i] for i in np.random.default_rng([seed, 7]).permutation(len(prompts))]
    parsed = {caption: _parsed(caption, family) for caption in dict.fromkeys(source)}
    scenes, paired = [], []
    for index, (prompt, rendered) in enumerate(zip(prompts, source)):
        for copy in range(images_per_prompt):
            scene = _render_stated(parsed[rendered], np.random.default_rng([seed, index, copy]))
            scenes.append(_ignore(scene, behaviours, np.random.default_rng([seed, index, copy, 1])))
            paired.append(prompt)
    return SceneDataset(scenes, name=f"generator-{generator}", split=f"seed{seed}"), paired
