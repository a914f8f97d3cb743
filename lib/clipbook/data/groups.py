"""Group-robustness benchmarks: Waterbirds and CelebA, with the spurious attribute of every image.

A *group* is a (class, spurious attribute) pair: (landbird / waterbird, land / water background) for
Waterbirds, (dark / blond hair, female / male) for CelebA, the benchmarks of group DRO (Sagawa et al.,
ICLR 2020) reported as average and worst-group accuracy. Importing this module registers both in
`registry.DATASETS` (kind "groups").

Layouts (nothing is ever written under the data root):
- Waterbirds: `$CLIPBOOK_DATA/waterbird_complete95_forest2water2/` with the group DRO `metadata.csv`
  (columns img_filename, y, split, place; split 0/1/2 = train/val/test) and the images it names.
- CelebA: `$CLIPBOOK_DATA/celeba/` in torchvision's layout (`img_align_celeba/`, `list_attr_celeba.txt`,
  `list_eval_partition.txt`); the CSV versions of the two lists (Kaggle's copy, which PerceptionCLIP's
  `src/datasets/celeba.py` reads) are accepted as well. Target Blond_Hair, spurious attribute Male.

Class names and templates follow PerceptionCLIP (github.com/umd-huang-lab/perceptionCLIP,
`src/datasets/{waterbirds,celeba}.py`, `src/templates/{waterbirds,celeba}_template.py`).
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import numpy as np

from clipbook.data.real import ImageListDataset, read_csv_rows
from clipbook.data.registry import MissingDatasetError, register_datasets, register_kind

GROUP_SPLITS = ("train", "val", "test")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}  # the split/partition column of both benchmarks

WATERBIRDS_URL = "https://nlp.stanford.edu/data/dro/waterbird_complete95_forest2water2.tar.gz"
CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"

GROUP_DATASETS: dict[str, dict] = {
    "waterbirds": {
        "kind": "groups", "title": "Waterbirds", "folder": "waterbird_complete95_forest2water2",
        "classnames": ["landbird", "waterbird"], "group_attribute": "place",
        "attribute_values": ["land", "water"], "template": "a photo of a {}.", "splits": GROUP_SPLITS,
        "source": f"{WATERBIRDS_URL} (group DRO, Sagawa et al. 2020; ~0.5 GB), unpacked under the data root.",
    },
    "celeba": {
        "kind": "groups", "title": "CelebA", "folder": "celeba", "target": "Blond_Hair",
        "classnames": ["dark hair", "blond hair"], "group_attribute": "gender", "attribute_column": "Male",
        "attribute_values": ["female", "male"], "template": "a photo of a celebrity with {}.",
        "splits": GROUP_SPLITS,
        "source": (f"torchvision.datasets.CelebA(<data root>, split='all', download=True) on a networked machine "
                   f"(Google Drive often refuses it: quota), or the Aligned&Cropped images and annotation lists "
                   f"from {CELEBA_URL}."),
    },
}


class GroupDataset(ImageListDataset):
    """An image list whose images also carry a spurious attribute; group = (label, attribute).

    `attribute(name)` returns the attribute as strings, like `ToyDataset.attribute`; `groups` numbers the
    groups `label * len(attribute_values) + attribute index` (group DRO's Waterbirds numbering).
    """

    def __init__(self, name: str, split: str, root: Path, relative_paths: list[str], labels, classnames: list[str],
                 template: str, *, group_attribute: str, attribute_values: list[str], attribute_indices):
        super().__init__(name, split, root, relative_paths, labels, classnames, template)
        self.group_attribute = group_attribute
        self.attribute_values = list(attribute_values)
        self.attribute_indices = np.asarray(attribute_indices, dtype=np.int64)
        if len(self.attribute_indices) != len(self.labels):
            raise ValueError(f"{len(self.attribute_indices)} attribute values for {len(self.labels)} images")

    def attribute(self, name: str) -> np.ndarray:
        """The per-image attribute `name` as a string array (only the group attribute is known)."""
        if name != self.group_attribute:
            raise KeyError(f"{self.name} has attribute {self.group_attribute!r}, not {name!r}")
        return np.asarray(self.attribute_values, dtype=object)[self.attribute_indices].astype(str)

    @property
    def groups(self) -> np.ndarray:
        return self.labels * len(self.attribute_values) + self.attribute_indices

    @property
    def group_names(self) -> list[str]:
        return [f"{classname} / {value}" for classname in self.classnames for value in self.attribute_values]


def _missing(path: Path, what: str, config: dict, layout: str) -> MissingDatasetError:
    return MissingDatasetError(f"{config['title']} {what} not found: {path}\n{layout}\nGet it from: {config['source']}")


def _require(path: Path, what: str, config: dict, layout: str) -> None:
    if not path.exists():
        raise _missing(path, what, config, layout)



def _waterbirds(name: str, config: dict, split: str, root: Path) -> GroupDataset:
    dataset_dir = root / config["folder"]
    layout = f"Expected layout: {dataset_dir}/metadata.csv and the images it lists, relative to {dataset_dir}."
    _require(dataset_dir, "dataset folder", config, layout)
    _require(dataset_dir / "metadata.csv", "metadata.csv", config, layout)
    rows = [row for row in read_csv_rows(dataset_dir / "metadata.csv", ("img_filename", "y", "split", "place"))
            if int(row["split"]) == SPLIT_CODES[split]]
    folder = PurePosixPath(config["folder"])
    return GroupDataset(name, split, root, [str(folder / row["img_filename"]) for row in rows],
                        [int(row["y"]) for row in rows], config["classnames"], config["template"],
                        group_attribute=config["group_attribute"], attribute_values=config["attribute_values"],
                        attribute_indices=[int(row["place"]) for row in rows])


def _celeba_lists(dataset_dir: Path, config: dict, layout: str) -> tuple[dict[str, int], list[str], list[dict]]:
    """(partition of each image, image ids in file order, attribute rows as {column: '1' / '-1'})."""
    text_attr, csv_attr = dataset_dir / "list_attr_celeba.txt", dataset_dir / "list_attr_celeba.csv"
    if text_attr.exists():  # torchvision: a count line, a header line of 40 names, then "<id> <+-1 x 40>"
        partition_path = dataset_dir / "list_eval_partition.txt"
        _require(partition_path, "list_eval_partition.txt", config, layout)
        lines = [line.split() for line in text_attr.read_text().splitlines()[1:] if line.strip()]
        header, body = lines[0], lines[1:]
        rows = [dict(zip(header, values[1:])) for values in body]
        ids = [values[0] for values in body]
        partition = {image_id: int(code) for image_id, code in
                     (line.split() for line in partition_path.read_text().splitlines() if line.strip())}
    elif csv_attr.exists():  # Kaggle's CSV copy, as read by PerceptionCLIP
        partition_path = dataset_dir / "list_eval_partition.csv"
        _require(partition_path, "list_eval_partition.csv", config, layout)
        rows = read_csv_rows(csv_attr, ("image_id", config["target"], config["attribute_column"]))
        ids = [row["image_id"] for row in rows]
        partition = {row["image_id"]: int(row["partition"])
                     for row in read_csv_rows(partition_path, ("image_id", "partition"))}
    else:
        raise _missing(text_attr, "attribute list", config, layout)
    for column in (config["target"], config["attribute_column"]):
        if rows and column not in rows[0]:
            raise ValueError(f"{dataset_dir}: the attribute list has no column {column!r}")
    return partition, ids, rows


def _celeba(name: str, config: dict, split: str, root: Path) -> GroupDataset:
    dataset_dir = root / config["folder"]
    layout = (f"Expected layout (torchvision.datasets.CelebA): {dataset_dir}/img_align_celeba/<id>.jpg, "
              f"{dataset_dir}/list_attr_celeba.txt and {dataset_dir}/list_eval_partition.txt (or the .csv "
              f"versions of both lists).")
    _require(dataset_dir, "dataset folder", config, layout)
    _require(dataset_dir / "img_align_celeba", "image folder", config, layout)
    partition, ids, rows = _celeba_lists(dataset_dir, config, layout)
    unlisted = [image_id for image_id in ids if image_id not in partition]
    if unlisted:
        raise ValueError(f"{dataset_dir}: {len(unlisted)} images have no partition, e.g. {unlisted[0]!r}")
    chosen = [(image_id, row) for image_id, row in zip(ids, rows) if partition[image_id] == SPLIT_CODES[split]]
    images = PurePosixPath(config["folder"], "img_align_celeba")
    return GroupDataset(name, split, root, [str(images / image_id) for image_id, _ in chosen],
                        [int(int(row[config["target"]]) == 1) for _, row in chosen],
                        config["classnames"], config["template"], group_attribute=config["group_attribute"],
                        attribute_values=config["attribute_values"],
                        attribute_indices=[int(int(row[config["attribute_column"]]) == 1) for _, row in chosen])


LOADERS = {"waterbirds": _waterbirds, "celeba": _celeba}


def load_group_dataset(name: str, config: dict, split: str, root: str | os.PathLike) -> GroupDataset:
    """The `split` of a registered group-robustness dataset under the data root `root`.

    Args:
        name: registry name ("waterbirds" or "celeba").
        config: its registry entry.
        split: "train", "val" or "test" (the official splits of both benchmarks).
        root: the data root ($CLIPBOOK_DATA).

    Returns:
        A `GroupDataset` of (RGB PIL image, label) with per-image groups.
    """
    if split not in config["splits"]:
        raise ValueError(f"unknown split {split!r} for {name}; known splits: {', '.join(config['splits'])}")
    return LOADERS[name](name, config, split, Path(root))


register_kind("groups", load_group_dataset)
register_datasets(GROUP_DATASETS)
