"""The toy world's text-to-image step: render a new scene from what a caption says.

Papers that build support sets with a text-to-image model (SuS-X, CapS-Adapter: Stable Diffusion
prompted with a class name or an image caption) need the toy-world analogue of that model. Here it
is exact and cheap: `parse_caption` reads back the attributes a caption of `world.caption` states
(class, colour, size, position, background, style), and `scene_from_caption` draws a new scene that
has exactly those attributes and random values, from a seeded generator, for everything the caption
leaves open (plus the usual rotation/position jitter and pixel noise). Like a diffusion model it is
faithful to the prompt and random elsewhere; unlike one it never gets the prompt wrong.

    scene = scene_from_caption("a photo of a small red circle at the left on a striped background.", seed=0)
    support = SceneDataset([scene, ...], name="caps-support", split="seed1")  # for features.image_features

The class may be named ("a red circle") or described by one of its `world.CLASSES` descriptions
("a red shape with no corners"); a caption that identifies no class is an error.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from clipbook.toyworld import world

# Same jitter ranges as the toy-world splits (splits.scenes): rotation in radians, shift as a
# fraction of the image side.
ANGLE_JITTER = 0.25
SHIFT_JITTER = 0.05

# "a photo" is the generator's default style: a caption that also says "a noisy photo" or "a sketch"
# (as a CapS prompt "A photo of circle. A sketch of ..." does) is rendered in that specific style.
_STYLE_PHRASES = {"noise": r"\bnoisy photo\b", "sketch": r"\bsketch\b", "photo": r"\bphoto\b"}
_POSITION_PHRASES = {name: (r"\bin the centre\b" if name == "centre" else rf"\bat the {name}\b")
                     for name in world.POSITIONS}

SeedLike = int | Sequence[int] | np.random.Generator


def _words(name: str) -> str:
    return rf"\b{re.escape(name)}\b"


def _take(text: str, pattern: str) -> tuple[bool, str]:
    """Whether `pattern` occurs in `text`, and the text with its occurrences blanked out (so a phrase
    such as "a point at the bottom", a heart's description, is not read again as a position)."""
    found = re.search(pattern, text) is not None
    return found, re.sub(pattern, " | ", text)


def _single(attributes: str, values: set[str], caption: str) -> str | None:
    if len(values) > 1:
        raise ValueError(f"caption states several {attributes} ({', '.join(sorted(values))}), "
                         f"so it describes no single toy-world scene: {caption!r}")
    return next(iter(values), None)


def parse_caption(caption: str) -> dict[str, str | None]:
    """The attributes a toy-world caption states.

    Reads every level of `world.caption` (name, short, medium, long, description), with or without
    a prefix such as CapS-Adapter's "A photo of {class}. ". Matching is on whole words and phrases,
    case-insensitive; class descriptions and background phrases are matched first and blanked out, so
    the words inside them ("at the bottom" in a heart's "a point at the bottom") are not read twice.

    Args:
        caption: the text.

    Returns:
        A dict with keys ``classname``, ``colour``, ``size``, ``position``, ``background`` and
        ``domain``; a value is None where the caption does not state it. ``classname`` is never None.

    Raises:
        ValueError: if the caption identifies no class, or states two different values of one
            attribute (two classes, two colours, a sketch that is also a noisy photo, ...).
    """
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a string, got {type(caption).__name__}")
    text = " " + caption.lower() + " "
    classes = set()
    # longest first, so that no description is blanked out by a shorter one inside it
    descriptions = sorted(((d, name) for name, spec in world.CLASSES.items() for d in spec["descriptions"]),
                          key=lambda item: -len(item[0]))
    for description, name in descriptions:
        found, text = _take(text, _words(description))
        if found:
            classes.add(name)
    backgrounds = set()
    for name, spec in world.BACKGROUNDS.items():
        found, text = _take(text, _words(spec["phrase"]))
        if found:
            backgrounds.add(name)
    styles = set()
    for name, pattern in _STYLE_PHRASES.items():  # "noisy photo" is taken before "photo"
        found, text = _take(text, pattern)
        if found:
            styles.add(name)
    if len(styles) > 1:
        styles.discard("photo")
    classes |= {name for name in world.CLASS_NAMES if re.search(_words(name), text)}
    stated = {
        "classname": _single("classes", classes, caption),
        "colour": _single("colours", {c for c in world.COLOURS if re.search(_words(c), text)}, caption),
        "size": _single("sizes", {s for s in world.SIZES if re.search(_words(s), text)}, caption),
        "position": _single("positions", {p for p, pattern in _POSITION_PHRASES.items()
                                         if re.search(pattern, text)}, caption),
        "background": _single("backgrounds", backgrounds, caption),
        "domain": _single("styles", styles, caption),
    }
    if stated["classname"] is None:
        raise ValueError(f"caption names no toy-world class (known: {', '.join(world.CLASS_NAMES)}) and "
                         f"gives none of their descriptions: {caption!r}")
    return stated


def _generator(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer, Sequence)):
        raise TypeError(f"seed must be an int, a sequence of ints or a numpy Generator, got {seed!r}")
    return np.random.default_rng(seed)


def scene_from_caption(caption: str, seed: SeedLike, *, domain: str | None = None) -> world.Scene:
    """A new scene with the attributes the caption states and random values for the rest.

    The toy world's analogue of prompting a text-to-image model: colour, size, position and
    background the caption leaves open are drawn uniformly, and every scene gets fresh rotation and
    position jitter (the ranges of the toy-world splits) and a fresh pixel-noise seed, so two
    seeds give two different images of the same caption.

    Args:
        caption: a toy-world caption (see `parse_caption`).
        seed: an int, a sequence of ints (e.g. ``[run_seed, index]``) or a numpy Generator to draw from.
        domain: the rendering style. None (default) renders the style the caption states, or a photo
            if it states none; a domain name (``world.DOMAINS``) overrides the caption.

    Returns:
        The scene; render it with `world.render` (or through `SceneDataset`).

    Raises:
        ValueError: for a caption `parse_caption` rejects, or an unknown domain.
    """
    if domain is not None and domain not in world.DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; known: {', '.join(world.DOMAINS)}")
    stated = parse_caption(caption)
    rng = _generator(seed)

    def pick(attribute: str, choices) -> str:
        # draw even when the caption states the value, so one caption attribute does not shift the
        # random stream of the others
        drawn = str(rng.choice(list(choices)))
        return stated[attribute] or drawn

    colour = pick("colour", world.COLOURS)
    size = pick("size", world.SIZES)
    position = pick("position", world.POSITIONS)
    background = pick("background", world.BACKGROUNDS)
    angle = float(rng.uniform(-ANGLE_JITTER, ANGLE_JITTER))
    dx, dy = (float(v) for v in rng.uniform(-SHIFT_JITTER, SHIFT_JITTER, size=2))
    return world.Scene(label=world.CLASS_NAMES.index(stated["classname"]), colour=colour, size=size,
                       position=position, background=background, domain=domain or stated["domain"] or "photo",
                       angle=angle, dx=dx, dy=dy, noise_seed=int(rng.integers(0, 2**31)))


def render_caption(caption: str, seed: SeedLike, *, domain: str | None = None) -> np.ndarray:
    """The image (H, W, 3) uint8 of `scene_from_caption(caption, seed, domain=domain)`."""
    return world.render(scene_from_caption(caption, seed, domain=domain))[0]


class SceneDataset(torch.utils.data.Dataset):
    """A list of scenes as an image dataset, for `features.image_features` and data loaders.

    It has what the library's datasets have: ``name``, ``split``, ``classnames``, ``labels``,
    ``fingerprint()`` and ``__getitem__`` -> (PIL image, label), plus the toy world's ``mask``, ``captions``
    and ``attribute``; the registry's ``ToyDataset`` is this over a registered split. The fingerprint hashes every scene,
    so the features of a generated support set are cached under its content, not its name.

    Args:
        scenes: the scenes, in order.
        name: a dataset name (shown in progress bars and cache file names).
        split: a split name, e.g. which seed generated the scenes.
    """

    def __init__(self, scenes: Sequence[world.Scene], name: str = "scenes", split: str = "generated"):
        self.scenes = tuple(scenes)
        if not all(isinstance(s, world.Scene) for s in self.scenes):
            raise TypeError("SceneDataset takes a sequence of toy-world Scene objects")
        self.name, self.split = name, split
        self.classnames = list(world.CLASS_NAMES)
        self.labels = np.array([s.label for s in self.scenes], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int):
        image, _ = world.render(self.scenes[index])
        return Image.fromarray(image), int(self.labels[index])

    def mask(self, index: int) -> np.ndarray:
        return world.render(self.scenes[index])[1]

    def captions(self, level: str) -> list[str]:
        return [world.caption(s, level) for s in self.scenes]

    def attribute(self, name: str) -> np.ndarray:
        """A per-image attribute (colour, size, position, background, domain) as a string array."""
        return np.array([getattr(s, name) for s in self.scenes])

    def fingerprint(self) -> dict:
        blob = json.dumps([s.to_dict() for s in self.scenes], sort_keys=True)
        return {"dataset": "scenes", "world_version": world.WORLD_VERSION,
                "scenes": hashlib.sha256(blob.encode()).hexdigest()}
