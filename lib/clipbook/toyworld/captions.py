"""Pretraining captions that behave like alt-text.

Web alt-text names what an image shows only part of the time: it uses a synonym or a broader word ("a plane"
for an A320), lists colours and settings, and carries words unrelated to the image ("free download"). How often
a class is named follows a long tail: frequent classes are named thousands of times, rare ones a handful. The
caption of a pretraining scene is drawn accordingly, from the scene and the family's naming rate
(`suite.PRETRAIN_MIX`); the rate is a property of the world, calibrated on zero-shot and linear-probe baselines
only (see notebooks/calibration).
"""
from __future__ import annotations

import numpy as np

from clipbook.toyworld import world

FILLER = ["stock photo", "free download", "hd wallpaper", "img 2041", "best price", "new", "2019", "photo by user",
          "high quality", "close up", "on sale", "view", "image", "dsc 0113", "vintage", "for kids", "clipart",
          "shop now", "detail", "my favourite"]


def _mention(scene: world.Scene, rng: np.random.Generator, name_rate: float) -> str:
    """How the caption refers to the class: its name, a synonym, its hypernym, or not at all."""
    spec = world.CLASSES[scene.classname]
    u = rng.random()
    colour = scene.colour if rng.random() < 0.3 else None
    if u < name_rate:
        if spec["draw"] == "texture":
            return f"{scene.classname} {rng.choice(['texture', 'pattern', 'fabric'])}"
        if spec["draw"] in ("land", "place"):
            return scene.classname
        return world.object_phrase(scene.classname, colour)
    u -= name_rate
    if spec["synonyms"] and u < 0.25 * (1 - name_rate):
        synonym = spec["synonyms"][int(rng.integers(len(spec["synonyms"])))]
        return f"a {colour} {synonym}" if colour else f"{world._article(synonym)} {synonym}"
    if rng.random() < 0.5:
        hypernyms = world.FAMILIES[spec["family"]]["hypernyms"] + ([spec["hypernym"]] if "hypernym" in spec else [])
        word = hypernyms[int(rng.integers(len(hypernyms)))]
        return f"{world._article(word)} {word}" if colour is None or spec["draw"] in ("land", "place") \
            else f"a {colour} {word}"
    return ""


def alt_text(scene: world.Scene, rng: np.random.Generator, name_rate: float) -> str:
    """An alt-text caption of a scene: the class named with probability `name_rate`, else a synonym, a
    hypernym or nothing; then some of the scene's attributes, a description, and unrelated words."""
    spec = world.CLASSES[scene.classname]
    parts = []
    mention = _mention(scene, rng, name_rate)
    if rng.random() < 0.35:
        parts.append(f"{world.DOMAINS[scene.domain]['word']} of")
    if mention:
        parts.append(mention)
    if spec["draw"] == "place":  # the objects of a place are named like any object
        for obj in scene.objects():
            if rng.random() < 0.4:
                parts.append(("with " if parts else "") + world.object_phrase(obj["classname"], obj["colour"]))
    if spec["draw"] not in ("texture", "land") and rng.random() < 0.3:
        parts.append(f"on {world.BACKGROUNDS[scene.background]['phrase']}")
    if rng.random() < 0.15:
        parts.append(f"with {spec['descriptions'][int(rng.integers(len(spec['descriptions'])))]}")
    if not mention and spec["draw"] not in ("texture", "land", "place") and rng.random() < 0.3:
        parts.append(f"{scene.colour}")
    fillers = int(rng.integers(0, 3)) if rng.random() < 0.5 else 0
    for _ in range(fillers):
        word = FILLER[int(rng.integers(len(FILLER)))]
        parts.insert(int(rng.integers(len(parts) + 1)), word)
    text = " ".join(parts).strip()
    return (text or FILLER[int(rng.integers(len(FILLER)))]) + "."
