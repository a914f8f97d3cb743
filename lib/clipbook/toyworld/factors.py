"""Factor-controlled evaluation sets of the toy world: single-factor shifts, cue conflicts and group labels.

Robustness studies (ImageNet-X, Geirhos et al.'s cue conflicts, worst-group accuracy) ask how a model's accuracy
depends on one visual factor at a time. Real data only offers annotations of what happened to be photographed;
the toy world can *change* one factor of the same scenes and nothing else, so a change in accuracy is attributable
to that factor alone. Every set here is a derived toy-world split (`splits.register_split` with "derived_from"),
so `ToyDataset`, split fingerprints and the feature cache work on it unchanged:

    name = shift_split("test", "size", "tiny")           # "test@size=tiny": the test scenes, every object tiny
    name = cue_conflict_split("test", classes=range(6))   # shape of one class on another class's home background
    cue_labels(name), shape_labels(name)                  # both labels of every cue-conflict image
    group_labels("test", "background")                    # "circle / dots", ... for worst-group accuracy

Factors (`FACTORS`): size, position (a named position, or a corner that cuts large objects: partial views),
background, domain (the rendering style), pose (a rotation added to each object's own small jitter) and colour.

Cues (`CUES`): a cue is a property the world ties to classes, which a model can learn instead of the shape. The
toy world has one: each generic class has a *home background* (`splits.home_background`) that it shows more often
than the others in pretraining and in the labelled splits (30 % against 14 % for each other background). No class
of the world has a colour of its own (free-coloured objects, or palettes shared across classes), and textures are
a family of their own rather than a surface of objects, so colour and texture conflicts cannot be built without
changing the renderer; they are not offered.
"""
from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Iterable

import numpy as np

from clipbook.toyworld import splits as toy_splits
from clipbook.toyworld.world import (BACKGROUNDS, CLASSES, COLOURS, DOMAINS, FAMILY_CLASSES, POSITIONS, SIZES,
                                     Scene)

# Bump when a derivation below changes what it produces: it is part of every derived split's fingerprint.
FACTORS_VERSION = "1"

# Corners as centre fractions: a small object there touches the frame, a large one is cut (a partial view).
CORNERS: dict[str, tuple[float, float]] = {
    "top-left": (0.2, 0.2), "top-right": (0.8, 0.2), "bottom-left": (0.2, 0.8), "bottom-right": (0.8, 0.8),
}
# Families whose scenes show one main object that a factor can be changed on.
OBJECT_DRAWS = ("shape", "pet", "aircraft", "flower", "food")

FACTORS: dict[str, dict] = {
    "size": {"values": tuple(SIZES), "help": "the main object's size (world.SIZES)"},
    "position": {"values": tuple(POSITIONS) + tuple(CORNERS),
                 "help": "a named position (jitter kept) or a corner (no jitter; large objects are cut)"},
    "background": {"values": tuple(BACKGROUNDS), "help": "the background pattern"},
    "domain": {"values": tuple(DOMAINS), "help": "the rendering style (world.DOMAINS)"},
    "pose": {"values": None, "help": "a rotation in radians added to every object's own angle"},
    "colour": {"values": tuple(COLOURS), "help": "the main object's colour (world.COLOURS)"},
}
CUES: dict[str, dict] = {
    "background": {"help": "the shape of one class on the home background of another (splits.home_background)"},
}


def check_shift(factor: str, value) -> None:
    """Raise a one-line error naming the factor or value when (factor, value) is not a valid shift."""
    if factor not in FACTORS:
        raise ValueError(f"unknown factor {factor!r}; known: {', '.join(FACTORS)}")
    values = FACTORS[factor]["values"]
    if values is None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError(f"factor {factor!r} takes a finite number (radians), got {value!r}")
    elif value not in values:
        raise ValueError(f"unknown value {value!r} of factor {factor!r}; known: {', '.join(map(str, values))}")


def shift_scene(scene: Scene, factor: str, value) -> Scene:
    """The same scene with exactly one factor set to `value` (noise seed, extras and every other field kept).

    Args:
        scene: a scene whose main object is drawn (not a texture, land-use or place scene).
        factor: a key of FACTORS.
        value: one of the factor's values; for "pose" a rotation in radians.

    Returns:
        The changed scene (a new frozen dataclass).
    """
    check_shift(factor, value)
    if CLASSES[scene.classname]["draw"] not in OBJECT_DRAWS:
        raise ValueError(f"factor shifts need a scene with a main object; {scene.classname!r} of family "
                         f"{scene.family!r} is drawn as {CLASSES[scene.classname]['draw']!r}")
    if factor == "size":
        return dataclasses.replace(scene, size=value)
    if factor == "position":
        if value in CORNERS:
            x, y = CORNERS[value]
            return dataclasses.replace(scene, position="centre", dx=x - 0.5, dy=y - 0.5)
        return dataclasses.replace(scene, position=value)
    if factor == "background":
        return dataclasses.replace(scene, background=value)
    if factor == "domain":
        return dataclasses.replace(scene, domain=value)
    if factor == "pose":
        return dataclasses.replace(scene, angle=float(scene.angle + value))
    return dataclasses.replace(scene, colour=value)


def _derive_shift(base: tuple[Scene, ...], name: str, config: dict) -> tuple[Scene, ...]:
    return tuple(shift_scene(scene, config["factor"], config["value"]) for scene in base)


def _cue_classes(config: dict) -> list[int]:
    return list(config["classes"])


def _derive_cue_conflict(base: tuple[Scene, ...], name: str, config: dict) -> tuple[Scene, ...]:
    """Scenes of the base split whose class is among `classes`, each put on the home background of another class
    of `classes`, drawn uniformly with a generator seeded by the split's name (reproducible, independent of the
    base split's own draws)."""
    classes = _cue_classes(config)
    rng = np.random.default_rng([toy_splits.WORLD_SEED, zlib.crc32(name.encode())])
    out = []
    for scene in base:
        if scene.label not in classes:
            continue
        others = [c for c in classes if c != scene.label]
        cue = others[int(rng.integers(len(others)))]
        out.append(dataclasses.replace(scene, background=toy_splits.home_background(cue)))
    return tuple(out)


toy_splits.register_derivation("factor-shift", _derive_shift)
toy_splits.register_derivation("cue-conflict", _derive_cue_conflict)


def _value_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def shift_split(base: str, factor: str, value) -> str:
    """Register (idempotently) and return the split "<base>@<factor>=<value>": the base split's scenes with one
    factor set to `value` (`shift_scene`), in the same order, so image i of both splits differs only there.

    Args:
        base: a registered toy-world split of a family with a main object (objects, pets, aircraft, ...).
        factor: a key of FACTORS.
        value: one of its values (for "pose", radians).
    """
    check_shift(factor, value)
    config = toy_splits.split_config(base)
    name = f"{base}@{factor}={_value_text(value)}"
    derived = {key: config[key] for key in ("family", "home_background_p") if key in config}
    toy_splits.register_split(name, **derived, domain=value if factor == "domain" else config["domain"],
                              size=config["size"], derived_from=base, derivation="factor-shift", factor=factor,
                              value=float(value) if factor == "pose" else value, factors_version=FACTORS_VERSION,
                              purpose=f"{base} with {factor} = {_value_text(value)} and nothing else changed")
    return name


def cue_conflict_split(base: str, cue: str = "background", classes: Iterable[int] = range(6)) -> str:
    """Register (idempotently) and return a Geirhos-style cue-conflict split: the base split's scenes of `classes`,
    each on the home background of another class of `classes`, so shape and cue point to different classes.

    Args:
        base: a registered split of the generic family ("objects"), the family with home backgrounds.
        cue: a key of CUES.
        classes: labels whose home backgrounds differ (any six consecutive labels: class i's home is background
            i mod 6), so that a background names exactly one class of the set.

    Returns:
        The split name "<base>@cue-conflict=<cue>:<classes>".
    """
    if cue not in CUES:
        raise ValueError(f"unknown cue {cue!r}; known: {', '.join(CUES)}")
    config = toy_splits.split_config(base)
    if config.get("family", "objects") != "objects" or config.get("mix"):
        raise ValueError(f"cue-conflict splits need a split of the generic family; {base!r} is not one")
    classes = sorted({int(c) for c in classes})
    n_classes = len(FAMILY_CLASSES["objects"])
    if len(classes) < 2 or not all(0 <= c < n_classes for c in classes):
        raise ValueError(f"classes must be at least two labels in 0..{n_classes - 1}, got {classes}")
    homes = [toy_splits.home_background(c) for c in classes]
    if len(set(homes)) != len(homes):
        raise ValueError(f"classes {classes} share home backgrounds {homes}: a background would name several "
                         "of them; pick at most six labels with different values mod 6")
    name = f"{base}@cue-conflict={cue}:{','.join(map(str, classes))}"
    toy_splits.register_split(name, family="objects", domain=config["domain"],
                              size=sum(s.label in classes for s in toy_splits.scenes(base)),
                              home_background_p=0.0, derived_from=base, derivation="cue-conflict", cue=cue,
                              classes=classes, factors_version=FACTORS_VERSION,
                              purpose=f"shape of one class on the {cue} of another ({base})")
    return name


def shape_labels(split: str) -> np.ndarray:
    """The label each image's shape belongs to (the class label of its scenes)."""
    return np.array([s.label for s in toy_splits.scenes(split)], dtype=np.int64)


def cue_labels(split: str) -> np.ndarray:
    """The class each image's cue points to, for a cue-conflict split (`cue_conflict_split`)."""
    config = toy_splits.split_config(split)
    if config.get("derivation") != "cue-conflict":
        raise ValueError(f"split {split!r} is not a cue-conflict split")
    owner = {toy_splits.home_background(c): c for c in _cue_classes(config)}
    return np.array([owner[s.background] for s in toy_splits.scenes(split)], dtype=np.int64)


def group_labels(split: str, attribute: str = "background") -> np.ndarray:
    """Group of every image, "<class> / <attribute value>" (e.g. "circle / dots"), for worst-group accuracy
    (`clipbook.metrics.worst_group_accuracy`). `attribute` is a Scene field: background, colour, size, position,
    domain; "home" groups by whether the scene shows its class's home background."""
    scenes = toy_splits.scenes(split)
    if attribute == "home":
        values = ["home" if s.background == toy_splits.home_background(s.label) else "away" for s in scenes]
    elif attribute in ("background", "colour", "size", "position", "domain"):
        values = [getattr(s, attribute) for s in scenes]
    else:
        raise ValueError(f"unknown group attribute {attribute!r}; known: background, colour, size, position, "
                         "domain, home")
    return np.array([f"{s.classname} / {v}" for s, v in zip(scenes, values)])
