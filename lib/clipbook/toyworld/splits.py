"""Named splits of the toy world: a registry of plain configs, sampled deterministically.

A split is (domain, size, how backgrounds relate to classes). Notebooks that need a new split add
an entry with `register_split` instead of growing flags.
"""
from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

from clipbook.toyworld.world import (BACKGROUNDS, CLASS_NAMES, COLOURS, DOMAINS, IMAGE_SIZE, POSITIONS,
                                     SIZES, WORLD_VERSION, Scene, render)

WORLD_SEED = 2024
BACKGROUND_NAMES = list(BACKGROUNDS)

# home_background_p: probability that a scene shows its class's "home" background
# (class i -> BACKGROUND_NAMES[i % 6]); None means backgrounds are drawn uniformly.
# p = 0 makes the split anti-correlated: a class never appears on its home background.
SPLITS: dict[str, dict] = {
    "pretrain": {"domain": "photo", "size": 24000, "home_background_p": 0.3,
                 "purpose": "image-caption pairs the tiny CLIP is pretrained on"},
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
    "spurious-train": {"domain": "photo", "size": 3600, "home_background_p": 0.95,
                       "purpose": "class strongly correlated with background"},
    "spurious-test": {"domain": "photo", "size": 2400, "home_background_p": 0.0,
                      "purpose": "class anti-correlated with background (never on its home)"},
    # every (class, background) group, backgrounds drawn independently of the class (~33 / ~100 images per
    # group): worst-group accuracy over all 72 groups (PerceptionCLIP's Waterbirds protocol on the toy world)
    "background-uniform-val": {"domain": "photo", "size": 2400, "home_background_p": None,
                               "purpose": "every (class, background) group; selection split for group robustness"},
    "background-uniform-test": {"domain": "photo", "size": 7200, "home_background_p": None,
                                "purpose": "every (class, background) group, ~100 images each; group robustness"},
}


def register_split(name: str, **config) -> None:
    """Add a split. Required keys: domain, size, home_background_p."""
    missing = {"domain", "size", "home_background_p"} - set(config)
    if missing:
        raise ValueError(f"split {name!r} is missing {sorted(missing)}")
    if config["domain"] not in DOMAINS:
        raise ValueError(f"unknown domain {config['domain']!r}; known: {sorted(DOMAINS)}")
    if name in SPLITS and SPLITS[name] != config:
        raise ValueError(f"split {name!r} already registered with a different config")
    SPLITS[name] = config


def home_background(label: int) -> str:
    return BACKGROUND_NAMES[label % len(BACKGROUND_NAMES)]


def split_config(name: str) -> dict:
    if name not in SPLITS:
        raise KeyError(f"unknown toy-world split {name!r}; known splits: {', '.join(SPLITS)}")
    return SPLITS[name]


@lru_cache(maxsize=64)
def scenes(name: str) -> tuple[Scene, ...]:
    """The scenes of a split, a pure function of (WORLD_SEED, split name, split config)."""
    cfg = split_config(name)
    rng = np.random.default_rng([WORLD_SEED, zlib.crc32(name.encode())])
    n, k = cfg["size"], len(CLASS_NAMES)
    labels = rng.permutation(np.arange(n) % k)
    colours = rng.choice(list(COLOURS), size=n)
    sizes = rng.choice(list(SIZES), size=n)
    positions = rng.choice(list(POSITIONS), size=n)
    p_home = cfg["home_background_p"]
    backgrounds = []
    for label in labels:
        home = home_background(int(label))
        if p_home is None:
            backgrounds.append(BACKGROUND_NAMES[rng.integers(len(BACKGROUND_NAMES))])
        elif rng.random() < p_home:
            backgrounds.append(home)
        else:
            others = [b for b in BACKGROUND_NAMES if b != home]
            backgrounds.append(others[rng.integers(len(others))])
    angles = rng.uniform(-0.25, 0.25, size=n)
    shifts = rng.uniform(-0.05, 0.05, size=(n, 2))
    noise_seeds = rng.integers(0, 2**31, size=n)
    return tuple(
        Scene(label=int(labels[i]), colour=str(colours[i]), size=str(sizes[i]), position=str(positions[i]),
              background=backgrounds[i], domain=cfg["domain"], angle=float(angles[i]),
              dx=float(shifts[i, 0]), dy=float(shifts[i, 1]), noise_seed=int(noise_seeds[i]))
        for i in range(n)
    )


def render_split(name: str, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """All images (N, H, W, 3) uint8 and masks (N, H, W) bool of a split."""
    rendered = [render(s, size) for s in scenes(name)]
    return np.stack([r[0] for r in rendered]), np.stack([r[1] for r in rendered])


def fingerprint(name: str) -> dict:
    """What identifies a split's content, for cache keys."""
    return {"world_version": WORLD_VERSION, "world_seed": WORLD_SEED, "split": name, **split_config(name)}
