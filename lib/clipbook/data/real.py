"""Real datasets in the CoOp layout: the 11 few-shot benchmarks and the four ImageNet shift targets.

Folder layouts, split files and class-name files follow CoOp (github.com/KaiyangZhou/CoOp,
DATASETS.md and datasets/*.py); the zero-shot templates are CoOp's trainers/zsclip.py
CUSTOM_TEMPLATES. Importing this module registers its kinds and datasets in `registry`.

Deliberate differences from CoOp:
- A missing `split_zhou_*.json` is an error. CoOp then draws a fresh random split and saves it,
  which silently changes the evaluation protocol; here nothing is ever written under the data root.
- ImageNet labels are the line order of classnames.txt (CoOp enumerates the sorted wnid folders; the
  two agree for CoOp's classnames.txt, which is in sorted-wnid order).
- ImageNet-A and ImageNet-R labels index the full 1000-class order, so the ImageNet classifier can be
  reused; CoOp relabels them 0..199. CoOp's 200-way accuracy is the accuracy of the logits restricted
  to `dataset.class_subset`.

Every dataset yields (RGB PIL image, int label). Image paths are kept relative to the data root, so
`fingerprint()` (a feature-cache key) is unchanged when the root moves. Existence of folders and
split files is checked at construction; single images are only opened on access.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from clipbook.data.registry import MissingDatasetError, register_datasets, register_kind


def read_csv_rows(path: Path, required: tuple[str, ...]) -> list[dict]:
    """The rows of a dataset's CSV annotation file as dicts; a file without one of the `required` columns is an
    error that names them (a wrong or truncated download fails here, not deep inside a notebook)."""
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        missing = [column for column in required if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; found {reader.fieldnames}")
        return list(reader)


COOP_SPLITS = ("train", "val", "test")
COOP_DATASETS_MD = "https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md"
IMAGENET_TEMPLATE = "a photo of a {}."  # CoOp zsclip.py CUSTOM_TEMPLATES, same for every ImageNet variant
CLASSNAMES_FILE = "classnames.txt"


def _torchvision_source(torchvision_class: str, official: str) -> str:
    return (f"Images: {official}; or fetch them with torchvision.datasets.{torchvision_class}(root, download=True) "
            f"on a networked machine, then arrange them in this layout.")


def _coop_config(coop_name: str, folder: str, image_dir: str, template: str, source: str) -> dict:
    return {"kind": "coop", "split_format": "zhou_json", "title": coop_name, "folder": folder,
            "image_dir": image_dir, "split_file": f"split_zhou_{coop_name}.json", "template": template,
            "splits": COOP_SPLITS, "source": source}


def _variant_config(title: str, folder: str, image_dir: str, class_folders: str, source: str) -> dict:
    """`class_folders` is "wnid" (folders named n01440764 ...) or "label_index" (folders named 0 .. 999)."""
    return {"kind": "imagenet-variant", "title": title, "folder": folder, "image_dir": image_dir,
            "class_folders": class_folders, "template": IMAGENET_TEMPLATE, "splits": ("test",), "source": source}


REAL_DATASETS: dict[str, dict] = {
    "caltech101": _coop_config(
        "Caltech101", "caltech-101", "101_ObjectCategories", "a photo of a {}.",
        _torchvision_source("Caltech101",
                            "101_ObjectCategories.tar.gz from https://data.caltech.edu/records/mzrjq-6wc02")),
    "oxford_pets": _coop_config(
        "OxfordPets", "oxford_pets", "images", "a photo of a {}, a type of pet.",
        _torchvision_source("OxfordIIITPet", "https://www.robots.ox.ac.uk/~vgg/data/pets/")),
    # the split file's paths (cars_train/..., cars_test/...) are relative to the dataset folder itself
    "stanford_cars": _coop_config(
        "StanfordCars", "stanford_cars", "", "a photo of a {}.",
        _torchvision_source("StanfordCars", "cars_train.tgz and cars_test.tgz of the Stanford Cars dataset")),
    "oxford_flowers": _coop_config(
        "OxfordFlowers", "oxford_flowers", "jpg", "a photo of a {}, a type of flower.",
        _torchvision_source("Flowers102", "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/")),
    "food101": _coop_config(
        "Food101", "food-101", "images", "a photo of {}, a type of food.",
        _torchvision_source("Food101", "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/")),
    # FGVC-Aircraft keeps its official text splits (CoOp datasets/fgvc_aircraft.py): no split JSON
    "fgvc_aircraft": {
        "kind": "coop", "split_format": "variant_lists", "title": "FGVCAircraft", "folder": "fgvc_aircraft",
        "image_dir": "images", "classes_file": "variants.txt", "split_list": "images_variant_{split}.txt",
        "template": "a photo of a {}, a type of aircraft.", "splits": COOP_SPLITS,
        "source": _torchvision_source(
            "FGVCAircraft", "the data/ folder of fgvc-aircraft-2013b.tar.gz from "
                            "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/, renamed fgvc_aircraft/")},
    "sun397": _coop_config(
        "SUN397", "sun397", "SUN397", "a photo of a {}.",
        _torchvision_source("SUN397", "https://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz")),
    "dtd": _coop_config(
        "DescribableTextures", "dtd", "images", "{} texture.",
        _torchvision_source("DTD", "https://www.robots.ox.ac.uk/~vgg/data/dtd/")),
    "eurosat": _coop_config(
        "EuroSAT", "eurosat", "2750", "a centered satellite photo of {}.",
        _torchvision_source("EuroSAT", "EuroSAT.zip (RGB) from https://github.com/phelber/EuroSAT")),
    # torchvision's UCF101 reads the videos; CoOp uses one middle frame per video, shipped as a zip
    "ucf101": _coop_config(
        "UCF101", "ucf101", "UCF-101-midframes", "a photo of a person doing {}.",
        f"Images: UCF-101-midframes.zip (the middle frame of each video), linked from CoOp's DATASETS.md "
        f"({COOP_DATASETS_MD})."),
    # CoOp evaluates ImageNet on its official val set, which it calls "test"; having no other held-out set,
    # CoOp and Tip-Adapter/GDA select on that same set too (datasets/imagenet.py: `val = test`), so "val" is it
    "imagenet": {"kind": "imagenet", "title": "ImageNet", "folder": "imagenet", "image_dir": "images",
                 "split_dirs": {"train": "train", "val": "val", "test": "val"}, "template": IMAGENET_TEMPLATE,
                 "splits": ("train", "val", "test")},
    "imagenet_v2": _variant_config(
        "ImageNetV2", "imagenetv2", "imagenetv2-matched-frequency-format-val", "label_index",
        "imagenetv2-matched-frequency.tar.gz from https://github.com/modestyachts/ImageNetV2"),
    "imagenet_sketch": _variant_config(
        "ImageNet-Sketch", "imagenet-sketch", "images", "wnid", "https://github.com/HaohanWang/ImageNet-Sketch"),
    "imagenet_a": _variant_config(
        "ImageNet-A", "imagenet-adversarial", "imagenet-a", "wnid",
        "https://github.com/hendrycks/natural-adv-examples"),
    "imagenet_r": _variant_config(
        "ImageNet-R", "imagenet-rendition", "imagenet-r", "wnid", "https://github.com/hendrycks/imagenet-r"),
}


class ImageListDataset(torch.utils.data.Dataset):
    """Images given by paths relative to the data root, with integer labels."""

    def __init__(self, name: str, split: str, root: Path, relative_paths: list[str], labels,
                 classnames: list[str], template: str):
        self.name, self.split, self.root = name, split, root
        self.relative_paths = list(relative_paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classnames = list(classnames)
        self.templates = [template]

    def __len__(self) -> int:
        return len(self.relative_paths)

    def __getitem__(self, index: int):
        with Image.open(self.root / self.relative_paths[index]) as image:
            return image.convert("RGB"), int(self.labels[index])

    def fingerprint(self) -> dict:
        # Hashed in dataset order, not sorted: cached features are stored by position, so a reordered
        # split file must not reuse them.
        digest = hashlib.sha256()
        for path, label in zip(self.relative_paths, self.labels.tolist()):
            digest.update(f"{path}\t{label}\n".encode())
        return {"dataset": self.name, "split": self.split, "count": len(self), "files_sha256": digest.hexdigest()}


class ImageNetVariantDataset(ImageListDataset):
    """An ImageNet test-only variant labelled in the full 1000-class order (`classnames` has all 1000)."""

    @property
    def class_subset(self) -> np.ndarray:
        """The sorted class indices that occur (200 for ImageNet-A/R); restrict logits to these."""
        return np.unique(self.labels)


def _require(path: Path, what: str, guidance: str) -> None:
    if not path.exists():
        raise MissingDatasetError(f"{what} not found: {path}\n{guidance}")


def _visible_entries(directory: Path, *, directories: bool) -> list[str]:
    """Sorted names of the non-hidden sub-folders (or files) of `directory`, like Dassl's listdir_nohidden."""
    with os.scandir(directory) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir() == directories)


def _coop_dataset(name: str, config: dict, split: str, root: Path) -> ImageListDataset:
    dataset_dir = root / config["folder"]
    image_dir = dataset_dir / config["image_dir"]
    if config["split_format"] == "zhou_json":
        layout = (f"Expected layout (CoOp DATASETS.md, {COOP_DATASETS_MD}): {image_dir}/... and "
                  f"{dataset_dir / config['split_file']}.")
    else:
        split_list = dataset_dir / config["split_list"].format(split="<split>")
        layout = (f"Expected layout (CoOp DATASETS.md, {COOP_DATASETS_MD}): {image_dir}/<id>.jpg, "
                  f"{dataset_dir / config['classes_file']} and {split_list}.")
    _require(dataset_dir, f"{config['title']} dataset folder", f"{layout}\n{config['source']}")
    _require(image_dir, f"{config['title']} image folder", f"{layout}\n{config['source']}")
    if config["split_format"] == "zhou_json":
        relative_paths, labels, classnames = _read_zhou_split(config, split, root)
    else:
        relative_paths, labels, classnames = _read_variant_lists(config, split, root, layout)
    return ImageListDataset(name, split, root, relative_paths, labels, classnames, config["template"])


def _read_zhou_split(config: dict, split: str, root: Path):
    """CoOp's split_zhou_<Name>.json: {split: [[impath relative to the image folder, label, classname], ...]}
    (datasets/oxford_pets.py `read_split`)."""
    dataset_dir = root / config["folder"]
    split_path = dataset_dir / config["split_file"]
    _require(split_path, f"{config['title']} split file",
             f"Download {config['split_file']} as described in CoOp's DATASETS.md into {dataset_dir} "
             f"({COOP_DATASETS_MD}). clipbook does not generate a split itself: a new random split would "
             f"change the evaluation protocol.")
    with open(split_path) as file:
        split_lists = json.load(file)
    # every split contributes, so classnames cover classes absent from the requested split
    classname_of_label: dict[int, str] = {}
    for items in split_lists.values():
        for _, label, classname in items:
            classname_of_label.setdefault(int(label), classname)
    if sorted(classname_of_label) != list(range(len(classname_of_label))):
        raise ValueError(f"{split_path}: labels must be 0..K-1, got {sorted(classname_of_label)}")
    image_dir = PurePosixPath(config["folder"], config["image_dir"])
    items = split_lists[split]
    return ([str(image_dir / impath) for impath, _, _ in items], [int(label) for _, label, _ in items],
            [classname_of_label[label] for label in range(len(classname_of_label))])


def _read_variant_lists(config: dict, split: str, root: Path, layout: str):
    """FGVC-Aircraft's official lists: variants.txt (label = line index) and lines "<id> <variant>" in
    images_variant_<split>.txt (CoOp datasets/fgvc_aircraft.py)."""
    dataset_dir = root / config["folder"]
    classes_path = dataset_dir / config["classes_file"]
    list_path = dataset_dir / config["split_list"].format(split=split)
    for path in (classes_path, list_path):
        _require(path, f"{config['title']} annotation file", f"{layout}\n{config['source']}")
    classnames = [line.strip() for line in classes_path.read_text().splitlines() if line.strip()]
    label_of_variant = {classname: label for label, classname in enumerate(classnames)}
    image_dir = PurePosixPath(config["folder"], config["image_dir"])
    relative_paths, labels = [], []
    for line in list_path.read_text().splitlines():
        if not line.strip():
            continue
        image_id, _, variant = line.strip().partition(" ")
        if variant not in label_of_variant:
            raise ValueError(f"{list_path}: variant {variant!r} is not listed in {classes_path}")
        relative_paths.append(str(image_dir / f"{image_id}.jpg"))
        labels.append(label_of_variant[variant])
    return relative_paths, labels, classnames


def _read_imagenet_classnames(path: Path) -> tuple[list[str], list[str]]:
    """CoOp's classnames.txt: one "<wnid> <class name>" per line (datasets/imagenet.py `read_classnames`)."""
    wnids, classnames = [], []
    for line in path.read_text().splitlines():
        if line.strip():
            wnid, _, classname = line.strip().partition(" ")
            wnids.append(wnid)
            classnames.append(classname)
    return wnids, classnames


def _scan_class_folders(root: Path, image_dir: PurePosixPath, label_of_folder: dict[str, int],
                        classnames_path: Path, layout: str) -> tuple[list[str], list[int]]:
    """Every image of <image_dir>/<class folder>/, in sorted order; an unknown class folder is an error
    (skipping it would silently shrink the evaluation set)."""
    relative_paths, labels = [], []
    for folder in _visible_entries(root / image_dir, directories=True):
        if folder not in label_of_folder:
            raise ValueError(f"class folder {root / image_dir / folder} does not match any class of {classnames_path}")
        for filename in _visible_entries(root / image_dir / folder, directories=False):
            relative_paths.append(str(image_dir / folder / filename))
            labels.append(label_of_folder[folder])
    if not relative_paths:
        raise MissingDatasetError(f"no images found in class folders under {root / image_dir}\n{layout}")
    return relative_paths, labels


def _imagenet_dataset(name: str, config: dict, split: str, root: Path) -> ImageListDataset:
    dataset_dir = root / config["folder"]
    image_dir = PurePosixPath(config["folder"], config["image_dir"], config["split_dirs"][split])
    classnames_path = dataset_dir / CLASSNAMES_FILE
    layout = (f"Expected layout (CoOp DATASETS.md, {COOP_DATASETS_MD}): {dataset_dir}/images/train/<wnid>/*.JPEG, "
              f"{dataset_dir}/images/val/<wnid>/*.JPEG (val sorted into wnid folders) and {classnames_path} "
              f"(one '<wnid> <class name>' per line, linked from DATASETS.md).")
    _require(root / image_dir, "ImageNet images",
             f"ImageNet is gated: download it manually from https://image-net.org (an account is required).\n{layout}")
    _require(classnames_path, "ImageNet classnames.txt",
             f"open_clip ships the 1000 class names (open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES) but not "
             f"their wnids, which this file maps to labels.\n{layout}")
    wnids, classnames = _read_imagenet_classnames(classnames_path)
    label_of_wnid = {wnid: label for label, wnid in enumerate(wnids)}
    relative_paths, labels = _scan_class_folders(root, image_dir, label_of_wnid, classnames_path, layout)
    return ImageListDataset(name, split, root, relative_paths, labels, classnames, config["template"])


def _imagenet_variant_dataset(name: str, config: dict, split: str, root: Path) -> ImageNetVariantDataset:
    dataset_dir = root / config["folder"]
    image_dir = PurePosixPath(config["folder"], config["image_dir"])
    class_folder = "<wnid>" if config["class_folders"] == "wnid" else "<label index 0..999>"
    # CoOp copies imagenet/classnames.txt into each variant folder; the original is accepted as well
    own_classnames, shared_classnames = dataset_dir / CLASSNAMES_FILE, root / "imagenet" / CLASSNAMES_FILE
    layout = (f"Expected layout (CoOp DATASETS.md, {COOP_DATASETS_MD}): {root / image_dir}/{class_folder}/<image>, "
              f"and ImageNet's classnames.txt at {own_classnames} or {shared_classnames}.")
    _require(root / image_dir, f"{config['title']} images", f"Download: {config['source']}.\n{layout}")
    classnames_path = own_classnames if own_classnames.exists() else shared_classnames
    _require(classnames_path, "ImageNet classnames.txt", layout)
    wnids, classnames = _read_imagenet_classnames(classnames_path)
    if config["class_folders"] == "wnid":
        label_of_folder = {wnid: label for label, wnid in enumerate(wnids)}
    else:
        label_of_folder = {str(label): label for label in range(len(wnids))}
    relative_paths, labels = _scan_class_folders(root, image_dir, label_of_folder, classnames_path, layout)
    return ImageNetVariantDataset(name, split, root, relative_paths, labels, classnames, config["template"])


LOADERS = {"coop": _coop_dataset, "imagenet": _imagenet_dataset, "imagenet-variant": _imagenet_variant_dataset}


def load_real_dataset(name: str, config: dict, split: str, root: str | os.PathLike) -> ImageListDataset:
    """The `split` of a registered real dataset under the data root `root`."""
    if split not in config["splits"]:
        raise ValueError(f"unknown split {split!r} for {name}; known splits: {', '.join(config['splits'])}")
    return LOADERS[config["kind"]](name, config, split, Path(root))


for _kind in LOADERS:
    register_kind(_kind, load_real_dataset)
register_datasets(REAL_DATASETS)
