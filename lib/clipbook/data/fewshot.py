"""CoOp-protocol few-shot sampling.

Follows Dassl's `DatasetBase.generate_fewshot_dataset` (dassl/data/datasets/base_dataset.py):
per class, `random.sample(items, k)`; a class with fewer than k items keeps them all, or is sampled
with replacement when `repeat=True`. The validation subset has min(k, 4) shots per class
(CoOp datasets/oxford_pets.py). Unlike Dassl we use a local RNG seeded by (seed, shots, split),
so the subset does not depend on what ran before in the process.
"""
from __future__ import annotations

import random
from collections import defaultdict

import numpy as np

SHOTS = (1, 2, 4, 8, 16)
SEEDS = (1, 2, 3)


def validate_shots(shots: int) -> int:
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        raise ValueError(f"shots must be a positive integer (the protocol uses {SHOTS}), got {shots!r}")
    return int(shots)


def sample_few_shot(labels, shots: int, seed: int, *, repeat: bool = False, stream: str = "train") -> np.ndarray:
    """Indices of a k-shot-per-class subset of a labelled pool, sorted by class then draw order."""
    shots = validate_shots(shots)
    rng = random.Random(f"{stream}-{seed}-{shots}")
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(np.asarray(labels).tolist()):
        by_class[int(label)].append(index)
    chosen: list[int] = []
    for label in sorted(by_class):
        items = by_class[label]
        if len(items) >= shots:
            chosen.extend(rng.sample(items, shots))
        elif repeat:
            chosen.extend(rng.choices(items, k=shots))
        else:
            chosen.extend(items)
    return np.asarray(chosen, dtype=np.int64)


def coop_few_shot_split(train_labels, val_labels, shots: int, seed: int) -> dict[str, np.ndarray]:
    """The (train, val) few-shot indices of the CoOp protocol: k shots, val min(k, 4) shots."""
    return {
        "train": sample_few_shot(train_labels, shots, seed, stream="train"),
        "val": sample_few_shot(val_labels, min(shots, 4), seed, stream="val"),
    }
