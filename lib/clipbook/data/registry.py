"""The dataset registry: plain configs, one loader per kind.

    load_dataset("toy", "test")            # a toy-world split (no files)
    load_dataset("eurosat", "test")        # a CoOp dataset from $CLIPBOOK_DATA/eurosat + split_zhou_EuroSAT.json

Every dataset yields (PIL image, label) and exposes `classnames`, `labels` and `fingerprint()`
(what identifies its content, for feature-cache keys).
"""
from __future__ import annotations

import os
from pathlib import Path

from clipbook.toyworld import splits as toy_splits
from clipbook.toyworld.text_to_image import SceneDataset

# kind "toy": the toy world; "splits" maps the standard train/val/test names onto toy-world splits
# (any other toy split is reachable by its own name through "toy"). kind "coop", "imagenet" and
# "imagenet-variant": real datasets, registered by real.py; "packaged" and "image-folder": class-folder
# datasets shipped in a pip package or under the data root, registered by packaged.py; "groups": group-robustness
# datasets (Waterbirds, CelebA), registered by groups.py. "kind" picks the loader.
DATASETS: dict[str, dict] = {
    "toy": {"kind": "toy", "template": "a photo of a {}.", "splits": {"train": "train", "val": "val", "test": "test"}},
    "toy-noise": {"kind": "toy", "template": "a photo of a {}.",
                  "splits": {"train": "noise-train", "val": "noise-val", "test": "noise-test"}},
    "toy-sketch": {"kind": "toy", "template": "a photo of a {}.",
                   "splits": {"train": "sketch-train", "val": "sketch-val", "test": "sketch-test"}},
}


class UnknownDatasetError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class MissingDatasetError(FileNotFoundError):
    pass


def data_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root or os.environ.get("CLIPBOOK_DATA", Path.home() / "data")).expanduser()


class ToyDataset(SceneDataset):
    """A registered toy-world split as an image dataset (images rendered on access, deterministic)."""

    def __init__(self, split: str, name: str = "toy"):
        super().__init__(toy_splits.scenes(split), name=name, split=split)
        self.config = toy_splits.split_config(split)
        self.templates = [DATASETS[name]["template"]]

    def fingerprint(self) -> dict:  # the split's recipe: cheaper than hashing every scene, and as unique
        return {"dataset": "toy", **toy_splits.fingerprint(self.split)}


def known_datasets() -> list[str]:
    from clipbook.data import groups, packaged, real  # noqa: F401  (register the real, packaged and group datasets)

    return sorted(DATASETS)


def load_dataset(name: str, split: str, *, root: str | os.PathLike | None = None):
    """Return a dataset by registry name and split; unknown names and splits fail at once."""
    from clipbook.data import groups, packaged, real

    if name not in DATASETS:
        raise UnknownDatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(known_datasets())}")
    config = DATASETS[name]
    if config["kind"] == "toy":
        if name != "toy" and split not in config["splits"]:
            raise KeyError(f"dataset {name!r} has splits {', '.join(config['splits'])}, not {split!r}")
        return ToyDataset(config["splits"].get(split, split), name=name)
    if config["kind"] in packaged.LOADERS:
        return packaged.load_folder_dataset(name, config, split, data_root(root))
    if config["kind"] == "groups":
        return groups.load_group_dataset(name, config, split, data_root(root))
    return real.load_real_dataset(name, config, split, data_root(root))
