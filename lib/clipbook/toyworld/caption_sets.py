"""Several captions per image, drawn from the scene, for retrieval and captioning (COCO-style: five per image).

Styles:
- "short": one sentence each, from different "annotators": the world's short, medium, name-level and
  description captions and a long caption's summary-free detail sentence, in a per-image order;
- "long": `long_captions.long_caption` with a different wording per caption (the facts are the same);
- "alt": pretraining alt-text (`captions.alt_text`), at the family's naming rate;
- "detailed": the world's own detailed description (`world.caption(level="long")`: the class or place, every
  object with its colour, in a few short sentences), worded anew per caption: Flickr30k-like descriptions, distinct
  across images where the short captions repeat, the class or place and the first objects within a 32-token
  context (where "long" spends it on generic sentences);
- "short" in another language: `languages.caption` at the levels name / short / medium, in turn.
Captions are a pure function of (scene, style, language, seed), so caption features can be cached by that key.
"""
from __future__ import annotations

import zlib

import numpy as np

from clipbook.toyworld import captions as alt
from clipbook.toyworld import languages, long_captions, suite, world

STYLES = ("short", "long", "alt", "detailed")


def _short_english(scene: world.Scene, k: int, rng: np.random.Generator) -> str:
    annotators = ("medium", "short", "description", "name", "long")
    level = annotators[k % len(annotators)]
    if level == "long":  # the world's own long caption, its first two sentences: still one short description
        return ". ".join(world.caption(scene, "long", rng).split(". ")[:2]).rstrip(".") + "."
    return world.caption(scene, level, rng)


def captions(scenes, style: str = "short", *, per_image: int = 5, language: str = "en",
             seed: int = 0) -> tuple[list[str], np.ndarray]:
    """`per_image` captions of each scene, and for each caption the index of its scene.

    Args:
        scenes: the scenes (e.g. `load_dataset("toy-scenes", "test").scenes`).
        style: "short", "long", "alt" or "detailed" (see the module docstring); other languages have "short" only.
        per_image: captions per scene.
        language: "en" or a code of `languages.LANGUAGES`.
        seed: varies the wording (never the facts).
    """
    if style not in STYLES:
        raise ValueError(f"unknown caption style {style!r}; choose from {', '.join(STYLES)}")
    if language not in languages.LANGUAGES:
        raise ValueError(f"unknown language {language!r}; choose from {', '.join(languages.LANGUAGES)}")
    if language != "en" and style != "short":
        raise ValueError(f"captions in {language!r} come in style 'short' only, not {style!r}")
    if not isinstance(per_image, int) or per_image < 1:
        raise ValueError(f"per_image must be a positive int, got {per_image!r}")
    texts, owner = [], []
    for index, scene in enumerate(scenes):
        rng = np.random.default_rng([seed, scene.noise_seed, zlib.crc32(f"{style}/{language}".encode())])
        for k in range(per_image):
            if language != "en":
                texts.append(languages.caption(scene, languages.LEVELS[k % len(languages.LEVELS)], language, rng))
            elif style == "short":
                texts.append(_short_english(scene, k, rng))
            elif style == "long":
                texts.append(long_captions.long_caption(scene, rng))
            elif style == "detailed":
                texts.append(world.caption(scene, "long", rng))
            else:
                texts.append(alt.alt_text(scene, rng, suite.PRETRAIN_MIX[scene.family]["name_rate"]))
            owner.append(index)
    return texts, np.asarray(owner, dtype=np.int64)
