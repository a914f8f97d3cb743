"""The toy OVSS benchmarks (`clipbook.dense.benchmarks`) as registry datasets, kind "toy-ovss".

So a dense notebook names them under `datasets` like any other dataset (`datasets = ["toy-voc21", "toy-context"]`),
its parameters are checked against the registry before heavy work, and the paper profile swaps in the mmseg sets
("voc21", "context59", ...) with the same interface: (RGB PIL image, (H, W) int64 label map), `classnames`,
`ignore_index`, `templates` and `fingerprint()`. Scenes are rendered once and cached (`load_segmentation`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from clipbook.data.registry import register_datasets, register_kind
from clipbook.dense import benchmarks


class ToySegmentationDataset:
    def __init__(self, name: str, split: str):
        self.name, self.split = name, split
        self._stored = benchmarks.load_segmentation(name, split)
        self.classnames = list(self._stored.classnames)
        self.ignore_index = self._stored.ignore_index
        self.templates = ["a photo of a {}."]

    @property
    def images(self) -> np.ndarray:  # (N, H, W, 3) uint8: what the toy notebooks batch over without PIL
        return self._stored.images

    @property
    def labels(self) -> np.ndarray:  # (N, H, W) int64
        return self._stored.labels

    def __len__(self) -> int:
        return len(self._stored.images)

    def __getitem__(self, index: int):
        return Image.fromarray(self._stored.images[index]), self._stored.labels[index]

    def fingerprint(self) -> dict:
        return {"dataset": self.name, "split": self.split, "benchmark": benchmarks.OVSS_BENCHMARKS[self.name],
                "version": benchmarks.BENCHMARKS_VERSION, "world": benchmarks.world.WORLD_VERSION}


def load_toy_segmentation(name: str, config: dict, split: str, root: Path) -> ToySegmentationDataset:
    if split not in config["splits"]:
        raise KeyError(f"dataset {name!r} has splits {', '.join(config['splits'])}, not {split!r}")
    return ToySegmentationDataset(name, split)


register_kind("toy-ovss", load_toy_segmentation)
register_datasets({name: {"kind": "toy-ovss", "counterpart": spec["counterpart"],
                          "splits": tuple(benchmarks.SPLIT_SEEDS)}
                   for name, spec in benchmarks.OVSS_BENCHMARKS.items()})
