"""The toy world's registered splits as datasets (kind "toy"; rendered on access, no files)."""
from __future__ import annotations

from pathlib import Path

from clipbook.data.registry import register_datasets, register_kind
from clipbook.toyworld import splits as toy_splits
from clipbook.toyworld.text_to_image import SceneDataset

# "splits" maps the standard train/val/test names onto toy-world splits; through "toy", any other toy
# split is reachable by its own name.
TOY_DATASETS: dict[str, dict] = {
    "toy": {"kind": "toy", "template": "a photo of a {}.", "splits": {"train": "train", "val": "val", "test": "test"}},
    "toy-noise": {"kind": "toy", "template": "a photo of a {}.",
                  "splits": {"train": "noise-train", "val": "noise-val", "test": "noise-test"}},
    "toy-sketch": {"kind": "toy", "template": "a photo of a {}.",
                   "splits": {"train": "sketch-train", "val": "sketch-val", "test": "sketch-test"}},
}


class ToyDataset(SceneDataset):
    """A registered toy-world split as an image dataset (images rendered on access, deterministic)."""

    def __init__(self, split: str, name: str = "toy"):
        super().__init__(toy_splits.scenes(split), name=name, split=split)
        self.config = toy_splits.split_config(split)
        self.templates = [TOY_DATASETS[name]["template"]]

    def fingerprint(self) -> dict:  # the split's recipe: cheaper than hashing every scene, and as unique
        return {"dataset": "toy", **toy_splits.fingerprint(self.split)}


def load_toy_dataset(name: str, config: dict, split: str, root: Path) -> ToyDataset:
    if name != "toy" and split not in config["splits"]:
        raise KeyError(f"dataset {name!r} has splits {', '.join(config['splits'])}, not {split!r}")
    return ToyDataset(config["splits"].get(split, split), name=name)


register_kind("toy", load_toy_dataset)
register_datasets(TOY_DATASETS)
