"""Open-vocabulary segmentation and region–text benchmarks built from the toy world's multi-object scenes.

Each benchmark mirrors one real OVSS benchmark's vocabulary design, because that is what changes a method's
numbers there: how many classes, whether "background" is a class or ignored, and whether stuff (surfaces) is
labelled. The toy world knows every pixel, so the labels have no annotation noise.

| benchmark     | modelled on        | classes                                                        | unlabelled pixels  |
|---------------|--------------------|----------------------------------------------------------------|--------------------|
| toy-voc21     | PASCAL VOC (21)    | "background" (index 0) + the 20 generic objects                | background class   |
| toy-voc20     | PASCAL VOC (20)    | the 20 generic objects                                         | ignored (255)      |
| toy-context   | PASCAL Context 59  | 44 things (generic objects, pets, dishes) + the 6 backgrounds  | none: stuff labels |
| toy-stuff     | COCO-Stuff 171     | all 76 drawable things + the 6 backgrounds                      | none: stuff labels |

A scene is a photo-style background with 1–4 objects of the benchmark's things at random places, sizes and
colours; later objects occlude earlier ones and the label map follows the visible masks (`world.annotations`).
`region_texts` gives the same scenes' objects as (box, phrase) pairs for region–text retrieval.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from clipbook.cache import cached
from clipbook.evaluation.segmentation import IGNORE_INDEX
from clipbook.toyworld import world
from clipbook.toyworld.splits import class_colours

# Bump when scene sampling or labelling changes: it is part of every cached benchmark's key.
BENCHMARKS_VERSION = "1"
THINGS = {family: world.FAMILY_CLASSES[family] for family in ("objects", "pets", "aircraft", "flowers", "food")}
# a background's class name: its caption phrase without the article ("a striped background" -> "striped background")
STUFF = {name: spec["phrase"].split(" ", 1)[1] for name, spec in world.BACKGROUNDS.items()}

OVSS_BENCHMARKS: dict[str, dict] = {
    "toy-voc21": {"counterpart": "PASCAL VOC 2012, 21 classes with background", "background": "class",
                  "things": THINGS["objects"], "objects_per_scene": (1, 3), "images": 200},
    "toy-voc20": {"counterpart": "PASCAL VOC 2012, 20 classes, background ignored", "background": "ignore",
                  "things": THINGS["objects"], "objects_per_scene": (1, 3), "images": 200},
    "toy-context": {"counterpart": "PASCAL Context, 59 classes", "background": "stuff",
                    "things": THINGS["objects"] + THINGS["pets"] + THINGS["food"], "objects_per_scene": (2, 4),
                    "images": 200},
    "toy-stuff": {"counterpart": "COCO-Stuff, 171 classes", "background": "stuff",
                  "things": [name for names in THINGS.values() for name in names], "objects_per_scene": (2, 4),
                  "images": 200},
}
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}
# scenes per split: "train" is for the methods that train a head or fine-tune on dense labels or masks (CLIP-DINOiser,
# OVSeg, MAFT+); the evaluation splits have each benchmark's own "images"
TRAIN_IMAGES = 1000
SIZES = ("tiny", "small", "large")


@dataclass(frozen=True)
class SegmentationSet:
    """Images (N, H, W, 3) uint8, label maps (N, H, W) int64, class names in label order, the ignore index."""
    name: str
    images: np.ndarray
    labels: np.ndarray
    classnames: list[str]
    ignore_index: int = IGNORE_INDEX


def classnames(name: str) -> list[str]:
    """The benchmark's class names in label order."""
    spec = _spec(name)
    stuff = {"class": ["background"], "ignore": [], "stuff": list(STUFF.values())}[spec["background"]]
    return (stuff + list(spec["things"])) if spec["background"] == "class" else (list(spec["things"]) + stuff)


def _spec(name: str) -> dict:
    if name not in OVSS_BENCHMARKS:
        raise KeyError(f"unknown segmentation benchmark {name!r}; known: {', '.join(OVSS_BENCHMARKS)}")
    return OVSS_BENCHMARKS[name]


def scenes(name: str, split: str = "test") -> list[world.Scene]:
    """The benchmark's scenes: a pure function of (benchmark, split)."""
    spec = _spec(name)
    if split not in SPLIT_SEEDS:
        raise KeyError(f"unknown split {split!r}; known: {', '.join(SPLIT_SEEDS)}")
    rng = np.random.default_rng([SPLIT_SEEDS[split], sum(map(ord, name))])
    low, high = spec["objects_per_scene"]
    backgrounds = list(world.BACKGROUNDS)
    result = []
    for _ in range(TRAIN_IMAGES if split == "train" else spec["images"]):
        count = int(rng.integers(low, high + 1))
        objects = []
        for j in range(count):
            classname = spec["things"][int(rng.integers(len(spec["things"])))]
            colours = class_colours(classname)
            size = SIZES[int(rng.integers(len(SIZES)))] if count > 1 else "large"
            x, y = rng.uniform(0.22, 0.78, size=2)
            objects.append((classname, colours[int(rng.integers(len(colours)))], size, float(x), float(y),
                            float(rng.uniform(-0.3, 0.3))))
        first, extras = objects[0], tuple(objects[1:])
        family = world.CLASSES[first[0]]["family"]
        # the first object is the scene's main object (position "centre" shifted to its place), the rest extras
        result.append(world.Scene(
            label=world.FAMILY_CLASSES[family].index(first[0]), colour=first[1], size=first[2], position="centre",
            background=backgrounds[int(rng.integers(len(backgrounds)))], domain="photo", angle=first[5],
            dx=first[3] - 0.5, dy=first[4] - 0.5, noise_seed=int(rng.integers(0, 2**31)), family=family,
            extras=extras))
    return result


def label_map(scene: world.Scene, name: str, size: int = world.IMAGE_SIZE) -> np.ndarray:
    """Per-pixel labels of one scene under a benchmark's vocabulary (visible masks, later objects on top)."""
    spec, names = _spec(name), classnames(name)
    fill = {"class": 0, "ignore": IGNORE_INDEX}.get(spec["background"])
    if fill is None:
        fill = names.index(STUFF[scene.background])
    labels = np.full((size, size), fill, np.int64)
    for annotation in world.annotations(scene, size):
        labels[annotation["mask"]] = names.index(annotation["classname"])
    return labels


def load_segmentation(name: str, split: str = "test", size: int = world.IMAGE_SIZE) -> SegmentationSet:
    """Images and label maps of a benchmark split, rendered once and cached."""
    chosen = scenes(name, split)

    def build() -> dict:
        images, _ = world.render_batch(chosen, size)
        labels = np.stack([label_map(s, name, size) for s in chosen])
        return {"images": torch.from_numpy(images), "labels": torch.from_numpy(labels)}

    spec = {"benchmark": name, "config": _spec(name), "split": split, "size": size,
            "version": BENCHMARKS_VERSION, "world": world.WORLD_VERSION}
    stored = cached("ovss", spec, build, name=name)
    return SegmentationSet(name, stored["images"].numpy(), stored["labels"].numpy(), classnames(name))


def region_texts(name: str, split: str = "test", size: int = world.IMAGE_SIZE) -> list[list[dict]]:
    """Per image, its visible objects as {"box": [x0, y0, x1, y1] px, "phrase", "classname"}, for region–text
    retrieval (objects hidden entirely behind later ones are left out)."""
    return [[{k: a[k] for k in ("box", "phrase", "classname")} for a in world.annotations(scene, size)
             if a["mask"].any()] for scene in scenes(name, split)]
