"""Named splits of the toy world: a registry of plain configs, sampled deterministically.

A split is (family, domain, size, how backgrounds relate to classes, and optionally a shift `variant`). The toy
suite's datasets (`toyworld.suite`) are splits named `<family>-train/-val/-test`; the generic family keeps its
historical names (train, val, test, sketch-test, ...). "pretrain" is the mix of every family the tiny CLIP learns
from (`suite.PRETRAIN_MIX`). Notebooks that need a new split add an entry with `register_split` instead of growing
flags.
"""
from __future__ import annotations

import copy
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable

import numpy as np

from clipbook.toyworld import suite
from clipbook.toyworld.world import (BACKGROUNDS, CLASSES, DOMAINS, FAMILIES, FAMILY_CLASSES, FREE_COLOURS,
                                     IMAGE_SIZE, POSITIONS, WORLD_VERSION, Scene, render_batch)

WORLD_SEED = 2024
BACKGROUND_NAMES = list(BACKGROUNDS)
PET_COLOURS = ("brown", "orange", "white", "grey", "yellow")

# home_background_p: probability that a scene shows its class's "home" background
# (class i -> BACKGROUND_NAMES[i % 6]); None means backgrounds are drawn uniformly.
# p = 0 makes the split anti-correlated: a class never appears on its home background.
SPLITS: dict[str, dict] = {
    "pretrain": {"mix": "pretrain", "domain": "photo", "size": suite.PRETRAIN_SIZE, "home_background_p": 0.3,
                 "purpose": "image-caption pairs the tiny CLIP is pretrained on: every family (suite.PRETRAIN_MIX)"},
    "train": {"domain": "photo", "size": 1200, "home_background_p": 0.3,
              "purpose": "labelled pool the few-shot sampler draws k shots per class from"},
    "val": {"domain": "photo", "size": 600, "home_background_p": 0.3,
            "purpose": "full validation split (what CoOp/Tip-Adapter/GDA tune on)"},
    "test": {"domain": "photo", "size": 2400, "home_background_p": 0.3, "purpose": "in-domain test"},
    "sketch-train": {"domain": "sketch", "size": 1200, "home_background_p": None,
                     "purpose": "few-shot pool of the sketch domain"},
    "sketch-val": {"domain": "sketch", "size": 600, "home_background_p": None, "purpose": "sketch validation"},
    "sketch-test": {"domain": "sketch", "size": 2400, "home_background_p": None,
                    "purpose": "shifted domain: outline sketches, no colour or texture"},
    "noise-train": {"domain": "noise", "size": 1200, "home_background_p": 0.3,
                    "purpose": "few-shot pool of the noise domain"},
    "noise-val": {"domain": "noise", "size": 600, "home_background_p": 0.3, "purpose": "noise validation"},
    "noise-test": {"domain": "noise", "size": 2400, "home_background_p": 0.3,
                   "purpose": "shifted domain: heavy noise, low contrast"},
    "v2-test": {"domain": "photo", "size": 2400, "home_background_p": 0.3, "variant": "v2",
                "purpose": "ImageNet-V2-like: a fresh sample, wider pose, placement and colour range"},
    "a-test": {"domain": "photo", "size": 2400, "home_background_p": None, "variant": "hard",
               "purpose": "ImageNet-A-like: tiny off-centre objects beside a distractor object"},
    "r-test": {"domain": "cartoon", "size": 2400, "home_background_p": None,
               "purpose": "ImageNet-R-like: renditions, flat cartoons with thick outlines"},
    "spurious-train": {"domain": "photo", "size": 3600, "home_background_p": 0.95,
                       "purpose": "class strongly correlated with background"},
    "spurious-test": {"domain": "photo", "size": 2400, "home_background_p": 0.0,
                      "purpose": "class anti-correlated with background (never on its home)"},
    # every (class, background) group, backgrounds drawn independently of the class (~33 / ~100 images per
    # group): worst-group accuracy over all 120 groups (PerceptionCLIP's Waterbirds protocol on the toy world)
    "background-uniform-val": {"domain": "photo", "size": 4000, "home_background_p": None,
                               "purpose": "every (class, background) group; selection split for group robustness"},
    "background-uniform-test": {"domain": "photo", "size": 12000, "home_background_p": None,
                                "purpose": "every (class, background) group, ~100 images each; group robustness"},
}
for _dataset, _spec in suite.SUITE.items():
    if _spec["per_class"] is None:
        continue
    _family, _k = _spec["family"], len(FAMILY_CLASSES[_spec["family"]])
    for _split, _per_class in zip(("train", "val", "test"), _spec["per_class"]):
        SPLITS[f"{_family}-{_split}"] = {"family": _family, "domain": FAMILIES[_family]["domain"],
                                         "size": _per_class * _k, "home_background_p": 0.3,
                                         "purpose": f"{_spec['title']}: {_split} split of {_dataset}"}


# Derived splits: the scenes of a registered base split, transformed by a named function (e.g. one factor changed:
# `toyworld.factors`). A derived split's config holds "derived_from" (the base split), "derivation" (a key of
# DERIVATIONS) and the derivation's own arguments; its fingerprint nests the base split's.
DERIVATIONS: dict[str, Callable[[tuple[Scene, ...], str, dict], tuple[Scene, ...]]] = {}


def register_derivation(name: str, derive: Callable[[tuple[Scene, ...], str, dict], tuple[Scene, ...]]) -> None:
    """Make `derive(base_scenes, split_name, config) -> scenes` available to derived splits (idempotent)."""
    if DERIVATIONS.get(name, derive) is not derive:
        raise ValueError(f"derivation {name!r} already registered with a different function")
    DERIVATIONS[name] = derive


def register_split(name: str, **config) -> None:
    """Add a split. Required keys: domain, size, home_background_p; a derived split also has derived_from (a
    registered split) and derivation (a key of DERIVATIONS)."""
    missing = {"domain", "size", "home_background_p"} - set(config)
    if missing:
        raise ValueError(f"split {name!r} is missing {sorted(missing)}")
    if config.get("family", "objects") not in FAMILIES:
        raise ValueError(f"unknown family {config['family']!r}; known: {sorted(FAMILIES)}")
    if config["domain"] not in DOMAINS:
        raise ValueError(f"unknown domain {config['domain']!r}; known: {sorted(DOMAINS)}")
    if "derived_from" in config:
        split_config(config["derived_from"])
        if config.get("derivation") not in DERIVATIONS:
            raise ValueError(f"unknown derivation {config.get('derivation')!r}; known: {sorted(DERIVATIONS)}")
    if name in SPLITS and SPLITS[name] != config:
        raise ValueError(f"split {name!r} already registered with a different config")
    SPLITS[name] = config


def home_background(label: int) -> str:
    return BACKGROUND_NAMES[label % len(BACKGROUND_NAMES)]


def split_config(name: str) -> dict:
    if name not in SPLITS:
        raise KeyError(f"unknown toy-world split {name!r}; known splits: {', '.join(SPLITS)}")
    return SPLITS[name]


COLOUR_RULES = {"objects": FREE_COLOURS, "pets": PET_COLOURS, "aircraft": FREE_COLOURS + ("white", "grey"),
                "textures": FREE_COLOURS}
QUADRANTS = ((0.3, 0.3), (0.7, 0.3), (0.3, 0.7), (0.7, 0.7))


def class_colours(classname: str, variant: str | None = None) -> tuple[str, ...]:
    """The colours a class is drawn in: its own, its family's palette, or (shifted 'v2') a wider range."""
    spec = CLASSES[classname]
    if spec["colour"] is not None:
        return (spec["colour"],)
    palette = spec.get("palette") or COLOUR_RULES.get(spec["family"], ("grey",))
    return palette + (("brown", "grey", "white") if variant == "v2" and spec["family"] == "objects" else ())


def _pick(rng, values):
    return values[int(rng.integers(len(values)))]


def sample_scene(rng: np.random.Generator, family: str, label: int, domain: str, p_home,
                 variant: str | None) -> Scene:
    """One scene of a family's class: nuisances drawn from the split's distribution (a few draws per scene,
    always in the same order so one attribute's change does not shift the others)."""
    classname = FAMILY_CLASSES[family][label]
    spec = CLASSES[classname]
    colour = _pick(rng, class_colours(classname, variant))
    size = "tiny" if variant == "hard" else _pick(rng, ("small", "large"))
    position = _pick(rng, list(POSITIONS))
    home = home_background(label)
    u, other = rng.random(), _pick(rng, [b for b in BACKGROUND_NAMES if b != home])
    if spec["draw"] == "place":
        background = spec["background"]
    elif p_home is None:
        background = _pick(rng, BACKGROUND_NAMES)
    else:
        background = home if u < p_home else other
    angle_range, shift_range = {"v2": (0.45, 0.09), "hard": (0.8, 0.12)}.get(variant, (0.25, 0.05))
    angle, dx, dy = rng.uniform(-angle_range, angle_range), *rng.uniform(-shift_range, shift_range, size=2)
    noise_seed = int(rng.integers(0, 2**31))
    extras = ()
    if spec["draw"] in ("texture", "land"):  # a pattern: any orientation, any phase
        position, angle, dx, dy = "centre", rng.uniform(0, np.pi), *rng.uniform(-0.5, 0.5, size=2)
    elif spec["draw"] == "place":
        # a place shows each of its two characteristic objects most of the time (at least one), on its own
        # background most of the time, with one or two unrelated objects: no single picture shows all of it
        slots = rng.permutation(len(QUADRANTS))
        present = rng.random(2) < 0.75
        present[int(rng.integers(2))] = True
        others = [c for c in FAMILY_CLASSES["objects"] if c not in spec["objects"]]
        distractors = [_pick(rng, others) for _ in range(1 + int(rng.random() < 0.5))]
        members = [m for m, keep in zip(spec["objects"], present) if keep] + distractors
        if rng.random() > 0.6:
            background = _pick(rng, BACKGROUND_NAMES)
        extras = tuple((member, _pick(rng, class_colours(member)), "small" if member in spec["objects"] else "tiny",
                        float(QUADRANTS[slots[j]][0] + rng.uniform(-0.04, 0.04)),
                        float(QUADRANTS[slots[j]][1] + rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.25, 0.25)))
                       for j, member in enumerate(members))
    elif variant == "hard":  # a distractor object of another class, bigger than the labelled one
        distractor = _pick(rng, [c for c in FAMILY_CLASSES[family] if c != classname])
        corner = QUADRANTS[int(rng.integers(4))]
        extras = ((distractor, _pick(rng, class_colours(distractor)), "small", float(1 - corner[0]),
                   float(1 - corner[1]), float(rng.uniform(-0.8, 0.8))),)
        position = "centre"
        dx, dy = corner[0] - 0.5 + dx * 0.3, corner[1] - 0.5 + dy * 0.3
    return Scene(label=label, colour=colour, size=size, position=position, background=background, domain=domain,
                 angle=float(angle), dx=float(dx), dy=float(dy), noise_seed=noise_seed, family=family, extras=extras)


def _pretrain_plan(rng: np.random.Generator, n: int) -> list[tuple[str, int, str]]:
    """(family, label, domain) of each pretraining image: families by share, classes by a Zipf long tail over a
    fixed shuffled order, domains by the family's style mix."""
    families = list(suite.PRETRAIN_MIX)
    shares = np.array([suite.PRETRAIN_MIX[f]["share"] for f in families])
    chosen = rng.choice(len(families), size=n, p=shares / shares.sum())
    plan = [None] * n
    for f_index, family in enumerate(families):
        rows = np.flatnonzero(chosen == f_index)
        k = len(FAMILY_CLASSES[family])
        order = rng.permutation(k)  # which class is the head of the tail
        weights = np.empty(k)
        weights[order] = 1.0 / (np.arange(k) + 1) ** suite.ZIPF
        labels = rng.choice(k, size=len(rows), p=weights / weights.sum())
        mix = suite.PRETRAIN_MIX[family].get("domains", {FAMILIES[family]["domain"]: 1.0})
        names, probs = list(mix), np.array(list(mix.values()))
        domains = rng.choice(len(names), size=len(rows), p=probs / probs.sum())
        for row, label, d in zip(rows, labels, domains):
            plan[row] = (family, int(label), names[d])
    return plan


@lru_cache(maxsize=64)
def scenes(name: str) -> tuple[Scene, ...]:
    """The scenes of a split, a pure function of (WORLD_SEED, split name, split config)."""
    cfg = split_config(name)
    if "derived_from" in cfg:
        return tuple(DERIVATIONS[cfg["derivation"]](scenes(cfg["derived_from"]), name, cfg))
    rng = np.random.default_rng([WORLD_SEED, zlib.crc32(name.encode())])
    n = cfg["size"]
    if cfg.get("mix") == "pretrain":
        plan = _pretrain_plan(rng, n)
    else:
        family = cfg.get("family", "objects")
        labels = rng.permutation(np.arange(n) % len(FAMILY_CLASSES[family]))
        plan = [(family, int(label), cfg["domain"]) for label in labels]
    return tuple(sample_scene(rng, family, label, domain, cfg["home_background_p"], cfg.get("variant"))
                 for family, label, domain in plan)


def render_split(name: str, size: int = IMAGE_SIZE, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """All images (N, H, W, 3) uint8 and masks (N, H, W) bool of a split.

    Chunks are drawn in a thread per core: the renderer's array work releases the GIL (the 40,000-image pretraining
    split took 20 s in one thread, 2.3x less in two), and a scene's pixels do not depend on its chunk or thread."""
    all_scenes = scenes(name)
    starts = range(0, len(all_scenes), chunk)
    with ThreadPoolExecutor(max_workers=max(1, min(len(starts), os.cpu_count() or 1))) as pool:
        parts = list(pool.map(lambda start: render_batch(all_scenes[start:start + chunk], size), starts))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def fingerprint(name: str) -> dict:
    """What identifies a split's content, for cache keys."""
    config = split_config(name)
    if "derived_from" in config:
        return {"split": name, **{k: v for k, v in config.items() if k != "derived_from"},
                "derived_from": fingerprint(config["derived_from"])}
    mix = ({"pretrain_mix": copy.deepcopy(suite.PRETRAIN_MIX), "zipf": suite.ZIPF}
           if config.get("mix") == "pretrain" else {})
    return {"world_version": WORLD_VERSION, "world_seed": WORLD_SEED, "split": name, **config, **mix}
