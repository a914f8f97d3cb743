"""Open-vocabulary segmentation and region–text benchmarks built from mosaics of the toy world's one-object photos.

Each benchmark mirrors one real OVSS benchmark's vocabulary design, because that is what changes a method's
numbers there: how many classes, whether "background" is a class or ignored, and whether stuff (surfaces) is
labelled. The toy world knows every pixel, so the labels have no annotation noise.

| benchmark     | modelled on        | classes                                                        | unlabelled pixels  |
|---------------|--------------------|----------------------------------------------------------------|--------------------|
| toy-voc21     | PASCAL VOC (21)    | "background" (index 0) + the 20 generic objects                | background class   |
| toy-voc20     | PASCAL VOC (20)    | the 20 generic objects                                         | ignored (255)      |
| toy-context   | PASCAL Context 59  | 44 things (generic objects, pets, dishes) + the 6 backgrounds  | none: stuff labels |
| toy-stuff     | COCO-Stuff 171     | all 76 drawable things + the 6 backgrounds                      | none: stuff labels |
| toy-rs        | aerial land cover  | the 10 land-use classes of toy-satellite                       | none: tile = region |

An image is a 2×2 mosaic of 64-px tiles (`Mosaic`), 128 px in all; each tile is one object of the benchmark's
things drawn exactly as the toy classification splits draw their photos (`splits.sample_scene`: size small or large,
one of the five positions with a small shift, any background), so a benchmark object looks like what the tiny CLIP
was pretrained and calibrated on, and an image holds four objects on up to four surfaces.
Why a mosaic (decided on baselines only, 7 December 2026: the world-5 tiny RN CLIP's MaskCLIP map of the whole
image, read out with `dense.segmentor`, val split): version 1 drew 1–4 objects anywhere in one 64-px frame at tiny,
small and large sizes, which pretraining hardly shows; the tiny CLIP recognised those objects at 47 % even rendered
alone (77 % on the toy test split), and MaskCLIP reached 7.1 mIoU on toy-voc20 and 10.5 on toy-context (5.0 on
toy-voc21 against a 3.8 floor). On the mosaics it reaches 17.5 on toy-voc20 (floor 0.4), 13.9 on toy-context
(floor 0.3) and 6.2 on toy-voc21 (floor 4.1: "background" is 86 % of its pixels). Real MaskCLIP is far higher on
VOC and Context, so these benchmarks stay harder than the real ones for the same baseline; the tiny ViT CLIP's
dense read-outs are weaker still (MaskCLIP near the floor on toy-voc21).

`region_texts` gives every image's objects as (box, phrase) pairs for region–text retrieval.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from clipbook.cache import cached
from clipbook.evaluation.segmentation import IGNORE_INDEX
from clipbook.toyworld import world
from clipbook.toyworld.splits import sample_scene

# Bump when scene sampling or labelling changes: it is part of every cached benchmark's key.
BENCHMARKS_VERSION = "2"
THINGS = {family: world.FAMILY_CLASSES[family] for family in ("objects", "pets", "aircraft", "flowers", "food")}
# a background's class name: its caption phrase without the article ("a striped background" -> "striped background")
STUFF = {name: spec["phrase"].split(" ", 1)[1] for name, spec in world.BACKGROUNDS.items()}

OVSS_BENCHMARKS: dict[str, dict] = {
    "toy-voc21": {"counterpart": "PASCAL VOC 2012, 21 classes with background", "background": "class",
                  "things": THINGS["objects"], "images": 200},
    "toy-voc20": {"counterpart": "PASCAL VOC 2012, 20 classes, background ignored", "background": "ignore",
                  "things": THINGS["objects"], "images": 200},
    "toy-context": {"counterpart": "PASCAL Context, 59 classes", "background": "stuff",
                    "things": THINGS["objects"] + THINGS["pets"] + THINGS["food"], "images": 200},
    "toy-stuff": {"counterpart": "COCO-Stuff, 171 classes", "background": "stuff",
                  "things": [name for names in THINGS.values() for name in names], "images": 200},
    "toy-rs": {"counterpart": "remote-sensing land-cover segmentation (aerial tiles)", "background": "tile",
               "things": world.FAMILY_CLASSES["satellite"], "images": 200},
}
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}
# scenes per split: "train" is for the methods that train a head or fine-tune on dense labels or masks (CLIP-DINOiser,
# OVSeg, MAFT+); the evaluation splits have each benchmark's own "images"
TRAIN_IMAGES = 500
GRID = 2  # tiles per side
TILE = world.IMAGE_SIZE
IMAGE_SIZE = GRID * TILE  # a benchmark image's side in pixels


@dataclass(frozen=True)
class Mosaic:
    """One benchmark image: GRID × GRID tiles in row-major order, each a one-object scene rendered at TILE px."""
    tiles: tuple

    def offsets(self) -> list[tuple[int, int]]:
        """Each tile's (top, left) pixel in the image."""
        return [(TILE * (i // GRID), TILE * (i % GRID)) for i in range(len(self.tiles))]

    def annotations(self) -> list[dict]:
        """Every object's class, phrase, visible mask (IMAGE_SIZE²) and box [x0, y0, x1, y1] px in the image."""
        result = []
        for tile, (top, left) in zip(self.tiles, self.offsets()):
            if world.CLASSES[tile.classname]["draw"] in ("land", "texture"):  # a pattern fills its tile: one region
                mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
                mask[top:top + TILE, left:left + TILE] = True
                result.append({"classname": tile.classname, "phrase": world.object_phrase(tile.classname),
                               "mask": mask, "box": [left, top, left + TILE, top + TILE]})
                continue
            for annotation in world.annotations(tile, TILE):
                mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
                mask[top:top + TILE, left:left + TILE] = annotation["mask"]
                x0, y0, x1, y1 = annotation["box"]
                box = [x0 + left, y0 + top, x1 + left, y1 + top] if x1 > x0 else [0, 0, 0, 0]
                result.append({**annotation, "mask": mask, "box": box})
        return result


def _assemble(tiles: np.ndarray) -> np.ndarray:
    """(N·GRID², T, T, ...) tiles → (N, GRID·T, GRID·T, ...) images, row-major."""
    n, t = len(tiles) // GRID**2, tiles.shape[1]
    rest = tiles.shape[3:]
    grid = tiles.reshape(n, GRID, GRID, t, t, *rest).swapaxes(2, 3)
    return grid.reshape(n, GRID * t, GRID * t, *rest)


def render(mosaics: list[Mosaic]) -> np.ndarray:
    """(N, IMAGE_SIZE, IMAGE_SIZE, 3) uint8 images of the mosaics."""
    images, _ = world.render_batch([tile for m in mosaics for tile in m.tiles], TILE)
    return _assemble(images)


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
    stuff = {"class": ["background"], "ignore": [], "stuff": list(STUFF.values()), "tile": []}[spec["background"]]
    return (stuff + list(spec["things"])) if spec["background"] == "class" else (list(spec["things"]) + stuff)


def _spec(name: str) -> dict:
    if name not in OVSS_BENCHMARKS:
        raise KeyError(f"unknown segmentation benchmark {name!r}; known: {', '.join(OVSS_BENCHMARKS)}")
    return OVSS_BENCHMARKS[name]


def scenes(name: str, split: str = "test") -> list[Mosaic]:
    """The benchmark's images as mosaics: a pure function of (benchmark, split)."""
    spec = _spec(name)
    if split not in SPLIT_SEEDS:
        raise KeyError(f"unknown split {split!r}; known: {', '.join(SPLIT_SEEDS)}")
    rng = np.random.default_rng([SPLIT_SEEDS[split], sum(map(ord, name))])
    things = spec["things"]
    result = []
    for _ in range(TRAIN_IMAGES if split == "train" else spec["images"]):
        tiles = []
        for _ in range(GRID * GRID):
            classname = things[int(rng.integers(len(things)))]
            family = world.CLASSES[classname]["family"]
            # the toy classification splits' distribution in the family's own domain (photo; aerial for land use),
            # with no home-background bias and no variant
            domain = world.FAMILIES[family].get("domain", "photo")
            tiles.append(sample_scene(rng, family, world.FAMILY_CLASSES[family].index(classname), domain, None, None))
        result.append(Mosaic(tuple(tiles)))
    return result


def label_map(mosaic: Mosaic, name: str) -> np.ndarray:
    """Per-pixel labels (IMAGE_SIZE²) of one image under a benchmark's vocabulary: each object's visible mask, and
    per tile its surface (stuff benchmarks), "background" (index 0) or the ignore index."""
    spec, names = _spec(name), classnames(name)
    fills = {"class": lambda tile: 0, "ignore": lambda tile: IGNORE_INDEX,
             "stuff": lambda tile: names.index(STUFF[tile.background]), "tile": lambda tile: names.index(tile.classname)}
    fill = fills[spec["background"]]
    labels = np.empty((IMAGE_SIZE, IMAGE_SIZE), np.int64)
    for tile, (top, left) in zip(mosaic.tiles, mosaic.offsets()):
        labels[top:top + TILE, left:left + TILE] = fill(tile)
    for annotation in mosaic.annotations():
        labels[annotation["mask"]] = names.index(annotation["classname"])
    return labels


def load_segmentation(name: str, split: str = "test") -> SegmentationSet:
    """Images (IMAGE_SIZE px) and label maps of a benchmark split, rendered once and cached."""
    chosen = scenes(name, split)

    def build() -> dict:
        labels = np.stack([label_map(m, name) for m in chosen])
        return {"images": torch.from_numpy(render(chosen)), "labels": torch.from_numpy(labels)}

    spec = {"benchmark": name, "config": _spec(name), "split": split, "grid": GRID, "tile": TILE,
            "version": BENCHMARKS_VERSION, "world": world.WORLD_VERSION}
    stored = cached("ovss", spec, build, name=name)
    return SegmentationSet(name, stored["images"].numpy(), stored["labels"].numpy(), classnames(name))


def region_texts(name: str, split: str = "test") -> list[list[dict]]:
    """Per image, its visible objects as {"box": [x0, y0, x1, y1] px, "phrase", "classname"}, for region–text
    retrieval (objects hidden entirely are left out)."""
    return [[{k: a[k] for k in ("box", "phrase", "classname")} for a in mosaic.annotations() if a["mask"].any()]
            for mosaic in scenes(name, split)]
