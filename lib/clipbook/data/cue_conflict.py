"""Geirhos et al.'s cue-conflict stimuli (ICLR 2019), in the folder layout of bethgelab/model-vs-human.

Kind "cue-conflict": `<data root>/cue-conflict/<shape category>/<shape><i>-<texture><j>.png`, 16 categories (the
16-class ImageNet grouping of model-vs-human, `modelvshuman/helper/human_categories.py`), 1,280 images. The
folder is the shape's category; the file name gives the texture's. model-vs-human's `texture_shape.py` reads the
category from the folder (`ImageNetInfoMapping`) and its shape-bias analysis the texture from the file name.
Each dataset has `labels` (shape), `cue_labels` (texture) and the 16 `classnames`; only a "test" split.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from clipbook.data.real import ImageListDataset
from clipbook.data.registry import MissingDatasetError, register_datasets, register_kind

CATEGORIES = ["airplane", "bear", "bicycle", "bird", "boat", "bottle", "car", "cat", "chair", "clock", "dog",
              "elephant", "keyboard", "knife", "oven", "truck"]
SOURCE = ("the cue-conflict stimuli of https://github.com/bethgelab/model-vs-human (its `datasets/cue-conflict` "
          "folder, downloaded by `modelvshuman` or from the release assets; originally "
          "https://github.com/rgeirhos/texture-vs-shape, stimuli/style-transfer-preprocessed-512)")
CUE_CONFLICT_DATASETS: dict[str, dict] = {
    "cue-conflict": {"kind": "cue-conflict", "title": "cue-conflict stimuli (shape vs texture)",
                     "folder": "cue-conflict", "template": "a photo of a {}.", "splits": {"test": "test"}},
}
_NAME = re.compile(r"^(?P<shape>[a-z]+)\d+-(?P<texture>[a-z]+)\d+\.png$")


class CueConflictDataset(ImageListDataset):
    """Cue-conflict images: `labels` is each image's shape category, `cue_labels` its texture category."""

    def __init__(self, *args, cue_labels, **kwargs):
        super().__init__(*args, **kwargs)
        self.cue_labels = np.asarray(cue_labels, dtype=np.int64)

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "cue_sha256": hashlib.sha256(self.cue_labels.tobytes()).hexdigest()}


def load_cue_conflict(name: str, config: dict, split: str, root: str | os.PathLike) -> CueConflictDataset:
    if split not in config["splits"]:
        raise KeyError(f"dataset {name!r} has splits {', '.join(config['splits'])}, not {split!r}")
    root = Path(root)
    folder = root / config["folder"]
    if not folder.is_dir():
        raise MissingDatasetError(f"{name} not found: {folder} (expected <shape category>/<shape>N-<texture>M.png "
                                  f"for the 16 categories); get {SOURCE} and put it there, or set $CLIPBOOK_DATA")
    paths, shapes, textures = [], [], []
    for category in CATEGORIES:
        directory = folder / category
        if not directory.is_dir():
            raise MissingDatasetError(f"{name}: category folder {directory} is missing; expected all 16 of "
                                      f"{', '.join(CATEGORIES)} ({SOURCE})")
        for file in sorted(os.listdir(directory)):
            match = _NAME.match(file)
            if not match:
                continue
            if match["shape"] != category or match["texture"] not in CATEGORIES:
                raise ValueError(f"{name}: {directory / file} does not name a shape of its folder and a known "
                                 "texture category")
            paths.append(str(Path(config["folder"], category, file)))
            shapes.append(CATEGORIES.index(category))
            textures.append(CATEGORIES.index(match["texture"]))
    if not paths:
        raise MissingDatasetError(f"{name}: no <shape>N-<texture>M.png images under {folder} ({SOURCE})")
    return CueConflictDataset(name, split, root, paths, shapes, CATEGORIES, config["template"], cue_labels=textures)


def write_fake_layout(name: str, config: dict, root: Path, size) -> None:
    """The rehearsal's stand-in: per shape category, `images_per_class['test']` images named after a texture
    category (the next categories in the list), as small noise PNGs."""
    from clipbook.data.fake_layouts import write_image

    count = int(size.images_per_class.get("test", 1))
    for s, category in enumerate(CATEGORIES):
        for index in range(count):
            texture = CATEGORIES[(s + 1 + index) % len(CATEGORIES)]
            relative = Path(config["folder"], category, f"{category}{index + 1}-{texture}{index + 1}.png")
            write_image(root / relative, f"{name}/{relative}")


register_kind("cue-conflict", load_cue_conflict)
register_datasets(CUE_CONFLICT_DATASETS)
