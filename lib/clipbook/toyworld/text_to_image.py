"""The toy world's text-to-image step: render a new scene from what a caption says.

Papers that build support sets with a text-to-image model (SuS-X, CapS-Adapter: Stable Diffusion
prompted with a class name or an image caption) need the toy-world analogue of that model. Here it
is exact and cheap: `parse_caption` reads back the attributes a caption of `world.caption` states
(class, colour, size, position, background, style), and `scene_from_caption` draws a new scene that
has exactly those attributes and, for everything the caption leaves open, the values a toy-world split
would draw (`splits.sample_scene`: the class's colours, jitter, a place's objects, fresh pixel noise). Like a
diffusion model it is faithful to the prompt and random elsewhere; unlike one it never gets the prompt wrong.

    scene = scene_from_caption("a photo of a small red circle at the left on a striped background.", seed=0)
    support = SceneDataset([scene, ...], name="caps-support", split="seed1")  # for features.image_features

The class may be of any family, named ("a red circle", "a shiba inu", "a dc-9", "sea or lake") or described
by its `world.CLASSES` descriptions ("a red shape with no corners"). Descriptions identify a class only when
exactly one class has all the descriptions a caption gives: "a hole in the middle" fits a ring and a donut,
so it needs `family=` (the dataset's label space) to say which. A caption that identifies no single class is
an error.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from clipbook.toyworld import splits, world

# The jitter `scene_from_caption` draws (that of a split without a shift variant, `splits.sample_scene`): rotation
# in radians, shift as a fraction of the image side.
ANGLE_JITTER = 0.25
SHIFT_JITTER = 0.05

# Each domain's word in a caption (`world.DOMAINS`); plain "photo" is taken last, so a caption that also says
# "a noisy photo" or "a satellite photo" (as a CapS prompt "A photo of circle. A sketch of ..." does) keeps
# the specific style.
_STYLE_PHRASES = {"noise": r"\bnoisy photo\b", "aerial": r"\bsatellite photo\b", "texture": r"\bclose-up photo\b",
                  "sketch": r"\bsketch\b", "cartoon": r"\bcartoon\b", "photo": r"\bphoto\b"}
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


def _is_place(classname: str) -> bool:
    return world.CLASSES[classname]["draw"] == "place"


@lru_cache(maxsize=1)
def _description_phrases() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(descriptions read as descriptions, a place's object descriptions), each longest first.

    A place is described by its objects ("a b747"); those phrases are read as names of the objects, not blanked,
    so "a photo of a b747." stays an aircraft. Every other description is blanked once read, so class names inside
    one (a waffle's "a square grid") are not read as names.
    """
    objects = {world._a(o) for spec in world.CLASSES.values() if spec["draw"] == "place" for o in spec["objects"]}
    backgrounds = {spec["phrase"] for spec in world.BACKGROUNDS.values()}
    every = {d for spec in world.CLASSES.values() for d in spec["descriptions"]} - backgrounds
    return (tuple(sorted(every - objects, key=lambda d: -len(d))), tuple(sorted(objects, key=lambda d: -len(d))))


def _identify(text: str, candidates: list[str], caption: str) -> tuple[str, set[str], str]:
    """The class a caption names or describes, among `candidates`; returns it, the backgrounds the caption states,
    and the text with its description, background and name phrases blanked out (what is left is read for colour,
    size, position and style)."""
    blanked_descriptions, object_descriptions = _description_phrases()
    described = set()
    for description in blanked_descriptions:
        found, text = _take(text, _words(description))
        if found:
            described.add(description)
    backgrounds = set()
    for name, spec in world.BACKGROUNDS.items():
        found, text = _take(text, _words(spec["phrase"]))
        if found:
            backgrounds.add(name)
    described |= {d for d in object_descriptions if re.search(_words(d), text)}
    named = [name for name in candidates if re.search(_words(name), text)]
    places = [n for n in named if _is_place(n)]
    if places:
        # a place's caption names the objects in it ("There is a white b747."): the class is the place, and
        # the objects' colours are not the scene's
        classname = _single("classes", set(places), caption)
        for name in world.CLASSES:
            text = re.sub(rf"\b(?:(?:{'|'.join(world.COLOURS)})\s+)?{re.escape(name)}\b", " | ", text)
        # its own background is one of its descriptions ("It has a b747 and a plain grey background."), which a
        # scene of it need not show; another background is the scene's
        setting = world.CLASSES[classname]["background"]
        return classname, backgrounds - {setting}, text
    if named:
        classname = _single("classes", set(named), caption)
        return classname, backgrounds, re.sub(_words(classname), " | ", text)
    # a background phrase describes only a place (its setting); for any other class it is just the background
    settings = {world.BACKGROUNDS[name]["phrase"] for name in backgrounds}
    if not described and not settings:
        raise ValueError(f"caption names no toy-world class ({len(world.CLASSES)} known, e.g. "
                         f"{', '.join(candidates[:4])}) and gives none of their descriptions: {caption!r}")
    fitting = [n for n in candidates
               if described <= set(world.CLASSES[n]["descriptions"])
               and (not _is_place(n) or settings <= set(world.CLASSES[n]["descriptions"]))
               and (described or _is_place(n))]
    if len(fitting) != 1:
        which = f"several classes ({', '.join(fitting[:8])}{', ...' if len(fitting) > 8 else ''})" if fitting \
            else "no class"
        raise ValueError(f"caption names no toy-world class and its descriptions ({'; '.join(sorted(described))}) fit "
                         f"{which}; name the class or pass family=: {caption!r}")
    return fitting[0], backgrounds, text


def parse_caption(caption: str, family: str | None = None) -> dict[str, str | None]:
    """The attributes a toy-world caption states.

    Reads every level of `world.caption` (name, short, medium, long, description) of every family, with or
    without a prefix such as CapS-Adapter's "A photo of {class}. ". Matching is on whole words and phrases,
    case-insensitive. Class descriptions and background phrases are matched first and blanked out, so the
    words inside them ("at the bottom" in a heart's "a point at the bottom", "square" in a waffle's "a square
    grid") are not read twice. A caption that names a place (a multi-object scene) also names its objects: the
    class is the place. A caption that names no class is read by its descriptions: the class is the only one
    (among `family`'s classes, or all) that has every description it gives.

    Args:
        caption: the text.
        family: restrict the classes to one family (`world.FAMILIES`, a dataset's label space); None: all.

    Returns:
        A dict with keys ``classname``, ``family``, ``colour``, ``size``, ``position``, ``background`` and
        ``domain``; a value is None where the caption does not state it. ``classname`` is never None.

    Raises:
        ValueError: if the caption identifies no single class, or states two different values of one
            attribute (two classes, two colours, a sketch that is also a noisy photo, ...), or for an
            unknown family.
    """
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a string, got {type(caption).__name__}")
    if family is not None and family not in world.FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(world.FAMILIES)}")
    candidates = list(world.CLASSES) if family is None else list(world.FAMILY_CLASSES[family])
    classname, backgrounds, text = _identify(" " + caption.lower() + " ", candidates, caption)
    styles = set()
    for name, pattern in _STYLE_PHRASES.items():  # the specific styles are taken before plain "photo"
        found, text = _take(text, pattern)
        if found:
            styles.add(name)
    if len(styles) > 1:
        styles.discard("photo")
    return {
        "classname": classname,
        "family": world.CLASSES[classname]["family"],
        "colour": _single("colours", {c for c in world.COLOURS if re.search(_words(c), text)}, caption),
        "size": _single("sizes", {s for s in world.SIZES if re.search(_words(s), text)}, caption),
        "position": _single("positions", {p for p, pattern in _POSITION_PHRASES.items()
                                         if re.search(pattern, text)}, caption),
        "background": _single("backgrounds", backgrounds, caption),
        "domain": _single("styles", styles, caption),
    }


def _generator(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer, Sequence)):
        raise TypeError(f"seed must be an int, a sequence of ints or a numpy Generator, got {seed!r}")
    return np.random.default_rng(seed)


def scene_from_caption(caption: str, seed: SeedLike, *, domain: str | None = None,
                       family: str | None = None) -> world.Scene:
    """A new scene with the attributes the caption states and random values for the rest.

    The toy world's analogue of prompting a text-to-image model: what the caption leaves open is drawn as a
    toy-world split draws it (`splits.sample_scene`, backgrounds uniform): a colour of the class
    (`splits.class_colours`), a size, position and background, rotation and position jitter, a place's objects
    and a fresh pixel-noise seed, so two seeds give two different images of the same caption. Everything is
    drawn even where the caption states it, so one stated attribute does not shift the random stream of the
    others.

    Args:
        caption: a toy-world caption (see `parse_caption`).
        seed: an int, a sequence of ints (e.g. ``[run_seed, index]``) or a numpy Generator to draw from.
        domain: the rendering style. None (default) renders the style the caption states, or the family's
            native style (`world.FAMILIES`: a photo, a satellite photo, a close-up) if it states none; a domain
            name (``world.DOMAINS``) overrides the caption.
        family: restrict the classes to one family (see `parse_caption`).

    Returns:
        The scene, of the class's family; render it with `world.render` (or through `SceneDataset`).

    Raises:
        ValueError: for a caption `parse_caption` rejects, or an unknown domain.
    """
    if domain is not None and domain not in world.DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; known: {', '.join(world.DOMAINS)}")
    stated = parse_caption(caption, family)
    rng = _generator(seed)
    classname, family = stated["classname"], stated["family"]
    domain = domain or stated["domain"] or world.FAMILIES[family]["domain"]
    drawn = splits.sample_scene(rng, family, world.FAMILY_CLASSES[family].index(classname), domain, None, None)
    return replace(drawn, **{a: stated[a] for a in ("colour", "size", "position", "background") if stated[a]})


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

    def __init__(self, scenes: Sequence[world.Scene], name: str = "scenes", split: str = "generated",
                 family: str | None = None):
        self.scenes = tuple(scenes)
        if not all(isinstance(s, world.Scene) for s in self.scenes):
            raise TypeError("SceneDataset takes a sequence of toy-world Scene objects")
        families = {s.family for s in self.scenes} | ({family} if family else set())
        if len(families) > 1:
            raise ValueError(f"a SceneDataset holds scenes of one family (one label space), got {sorted(families)}")
        self.family = families.pop() if families else "objects"
        self.name, self.split = name, split
        self.image_size = world.IMAGE_SIZE
        self.classnames = list(world.FAMILY_CLASSES[self.family])
        self.labels = np.array([s.label for s in self.scenes], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int):
        image, _ = world.render(self.scenes[index])
        return Image.fromarray(image), int(self.labels[index])

    def render(self, indices) -> np.ndarray:
        """The images (k, H, W, 3) uint8 of `indices`, drawn as one batch (what feature extraction uses: the same
        pixels as `self[i]`, many times faster)."""
        return world.render_batch([self.scenes[int(i)] for i in indices])[0]

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
