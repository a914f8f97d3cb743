"""What the library's own pretrained models (the tiny CLIP, the tiny self-supervised encoder, the tiny supervised
classifier) share: each is trained on the toy world on first use and cached as a checkpoint keyed by everything
that determines it."""
from __future__ import annotations

from typing import Callable

import torch

from clipbook.cache import cache_dir, cached_checkpoint, content_key
from clipbook.toyworld import splits as toy_splits


def checkpoint_key(name: str, config: dict, recipe: dict) -> str:
    """Content key of (architecture, full recipe with its seed, toy-world version of its split, torch version)."""
    return content_key({"model": name, "config": config, "recipe": recipe,
                        "world": toy_splits.fingerprint(recipe["split"]), "torch": torch.__version__.split("+")[0]})


def toyworld_checkpoint(name: str, config: dict, recipe: dict, pretrain: Callable[..., dict], *, what: str,
                        show_progress: bool) -> str:
    """Path of `name`'s checkpoint for this full recipe, running `pretrain(recipe, show_progress=...)` on first use
    (under a file lock, written atomically; an unreadable file is moved aside and rebuilt). `pretrain` returns at
    least "state_dict", "loss" and "recipe"; further entries (plain values, e.g. the number of training images) are
    stored with them."""
    key = checkpoint_key(name, config, recipe)

    def build() -> dict:
        result = pretrain(recipe, show_progress=show_progress)
        return {**result, "key": key}

    return cached_checkpoint(cache_dir("checkpoints") / f"{name}-{key}.pt", build, what=what)
