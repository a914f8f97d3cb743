"""Real semantic-segmentation benchmarks in mmsegmentation's folder layouts, as the OVSS papers (MaskCLIP, SCLIP,
ClearCLIP, CLIP-DINOiser, Trident, DeCLIP, OVSeg, MAFT+) evaluate on them.

Kind "mmseg". Each dataset is a folder under the data root with an image folder, a label-map folder (one PNG of
class indices per image, 255 = ignore) and, for the VOC-style sets, a split file of image ids; the layouts and
suffixes are those of mmseg's `docs/en/user_guides/2_dataset_prepare.md` and its dataset classes
(`PascalVOCDataset`, `PascalContextDataset`, `COCOStuffDataset`, `CityscapesDataset`, `ADE20KDataset`), and of
ClearCLIP's `custom_datasets.py` for VOC20 / Context59 / COCO-Object:

| name        | folder                | images                      | labels                                          | split file                             |
|-------------|-----------------------|-----------------------------|-------------------------------------------------|----------------------------------------|
| voc21/voc20 | VOCdevkit/VOC2012     | JPEGImages/<id>.jpg         | SegmentationClass/<id>.png                      | ImageSets/Segmentation/val.txt         |
| context60/59| VOCdevkit/VOC2010     | JPEGImages/<id>.jpg         | SegmentationClassContext/<id>.png               | ImageSets/SegmentationContext/val.txt  |
| coco_stuff  | coco_stuff164k        | images/val2017/<id>.jpg     | annotations/val2017/<id>_labelTrainIds.png      | (every image)                          |
| coco_object | coco_stuff164k        | images/val2017/<id>.jpg     | annotations/val2017/<id>_instanceTrainIds.png   | (every image)                          |
| cityscapes  | cityscapes            | leftImg8bit/val/<city>/<id>_leftImg8bit.png | gtFine/val/<city>/<id>_gtFine_labelTrainIds.png | (every image) |
| ade20k      | ADEChallengeData2016  | images/validation/<id>.jpg  | annotations/validation/<id>.png                 | (every image)                          |

VOC20, Context59 and ADE20k reduce their labels (mmseg `reduce_zero_label=True`: 0 → 255, others − 1). A dataset
yields (RGB PIL image, (H, W) int64 label map) and has `classnames`, `ignore_index`, `fingerprint()`. Only "val"
exists (the benchmarks report validation mIoU). Nothing is written under the data root.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from clipbook.data import segmentation_classes as names
from clipbook.data.registry import MissingDatasetError, register_datasets, register_kind
from clipbook.evaluation.segmentation import IGNORE_INDEX, reduce_zero_label

PREPARE = "https://github.com/open-mmlab/mmsegmentation/blob/main/docs/en/user_guides/2_dataset_prepare.md"


def _config(title: str, folder: str, images: str, labels: str, classnames: tuple, *, image_suffix: str = ".jpg",
            label_suffix: str = ".png", split_file: str | None = None, reduce: bool = False, source: str) -> dict:
    return {"kind": "mmseg", "title": title, "folder": folder, "images": images, "labels": labels,
            "image_suffix": image_suffix, "label_suffix": label_suffix, "split_file": split_file,
            "reduce_zero_label": reduce, "classnames": list(classnames), "splits": ("val",),
            "template": "a photo of a {}.", "source": source}


_VOC = "VOCtrainval_11-May-2012.tar from http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ (mmseg: " + PREPARE + ")"
_CONTEXT = ("VOCtrainval_03-May-2010.tar from http://host.robots.ox.ac.uk/pascal/VOC/voc2010/ and trainval_merged.json "
            "converted with mmseg's tools/dataset_converters/pascal_context.py (" + PREPARE + ")")
_COCO = ("val2017.zip and stuffthingmaps_trainval2017.zip from cocodataset.org / github.com/nightrome/cocostuff, "
         "converted with mmseg's tools/dataset_converters/coco_stuff164k.py (" + PREPARE + "); COCO-Object's "
         "*_instanceTrainIds.png from ClearCLIP's datasets/cvt_coco_object.py")
SEGMENTATION_DATASETS: dict[str, dict] = {
    "voc21": _config("PASCAL VOC 2012 (21 classes)", "VOCdevkit/VOC2012", "JPEGImages", "SegmentationClass",
                     names.VOC21, split_file="ImageSets/Segmentation/val.txt", source=_VOC),
    "voc20": _config("PASCAL VOC 2012 (20 classes, background ignored)", "VOCdevkit/VOC2012", "JPEGImages",
                     "SegmentationClass", names.VOC21[1:], split_file="ImageSets/Segmentation/val.txt", reduce=True,
                     source=_VOC),
    "context60": _config("PASCAL Context (60 classes)", "VOCdevkit/VOC2010", "JPEGImages", "SegmentationClassContext",
                         names.CONTEXT60, split_file="ImageSets/SegmentationContext/val.txt", source=_CONTEXT),
    "context59": _config("PASCAL Context (59 classes)", "VOCdevkit/VOC2010", "JPEGImages", "SegmentationClassContext",
                         names.CONTEXT60[1:], split_file="ImageSets/SegmentationContext/val.txt", reduce=True,
                         source=_CONTEXT),
    "coco_stuff": _config("COCO-Stuff 164k (171 classes)", "coco_stuff164k", "images/val2017", "annotations/val2017",
                          names.COCO_STUFF, label_suffix="_labelTrainIds.png", source=_COCO),
    "coco_object": _config("COCO-Object (81 classes)", "coco_stuff164k", "images/val2017", "annotations/val2017",
                           names.COCO_OBJECT, label_suffix="_instanceTrainIds.png", source=_COCO),
    "cityscapes": _config("Cityscapes (19 classes)", "cityscapes", "leftImg8bit/val", "gtFine/val", names.CITYSCAPES,
                          image_suffix="_leftImg8bit.png", label_suffix="_gtFine_labelTrainIds.png",
                          source="leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
                                 "https://www.cityscapes-dataset.com, labelTrainIds made with mmseg's "
                                 "tools/dataset_converters/cityscapes.py (" + PREPARE + ")"),
    "ade20k": _config("ADE20K (150 classes)", "ADEChallengeData2016", "images/validation", "annotations/validation",
                      names.ADE20K, reduce=True,
                      source="ADEChallengeData2016.zip from http://data.csail.mit.edu/places/ADEchallenge/ "
                             "(" + PREPARE + ")"),
}


class SegmentationDataset:
    """Images and label maps of one benchmark; images and maps are opened on access."""

    def __init__(self, name: str, config: dict, root: Path, ids: list[str]):
        self.name, self.config, self.root, self.ids = name, config, root, ids
        self.split = "val"
        self.classnames = list(config["classnames"])
        self.templates = [config["template"]]
        self.ignore_index = IGNORE_INDEX

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, index: int) -> Path:
        c = self.config
        return self.root / c["folder"] / c["images"] / f"{self.ids[index]}{c['image_suffix']}"

    def label_path(self, index: int) -> Path:
        c = self.config
        return self.root / c["folder"] / c["labels"] / f"{self.ids[index]}{c['label_suffix']}"

    def label_map(self, index: int) -> np.ndarray:
        path = self.label_path(index)
        if not path.is_file():
            raise MissingDatasetError(f"{self.name}: label map {path} is missing (get {self.config['source']})")
        label = np.asarray(Image.open(path), dtype=np.int64)  # a palette PNG reads as its indices
        if label.ndim != 2:
            raise ValueError(f"{path}: a label map must be one channel of class indices; got shape {label.shape}")
        return reduce_zero_label(label) if self.config["reduce_zero_label"] else label

    def __getitem__(self, index: int):
        path = self.image_path(index)
        if not path.is_file():
            raise MissingDatasetError(f"{self.name}: image {path} is missing (get {self.config['source']})")
        with Image.open(path) as image:
            return image.convert("RGB"), self.label_map(index)

    def fingerprint(self) -> dict:
        digest = hashlib.sha256("\n".join(self.ids).encode()).hexdigest()
        return {"dataset": self.name, "split": self.split, "count": len(self.ids), "ids_sha256": digest}


def _ids(name: str, config: dict, root: Path) -> list[str]:
    folder = root / config["folder"]
    if config["split_file"]:
        split_file = folder / config["split_file"]
        if not split_file.is_file():
            raise MissingDatasetError(f"{name} not found: {split_file} is missing (get {config['source']}; or set "
                                      "$CLIPBOOK_DATA)")
        return [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    labels = folder / config["labels"]
    if not labels.is_dir():
        raise MissingDatasetError(f"{name} not found: {labels} is missing (get {config['source']}; or set $CLIPBOOK_DATA)")
    suffix = config["label_suffix"]
    # every label map under the folder (Cityscapes nests one folder per city), as mmseg scans it
    return sorted(str(p.relative_to(labels))[:-len(suffix)] for p in labels.rglob(f"*{suffix}"))


def load_segmentation_dataset(name: str, config: dict, split: str, root: str | os.PathLike) -> SegmentationDataset:
    if split not in config["splits"]:
        raise KeyError(f"dataset {name!r} has splits {', '.join(config['splits'])}, not {split!r}")
    root = Path(root)
    ids = _ids(name, config, root)
    if not ids:
        raise MissingDatasetError(f"{name}: no images listed under {root / config['folder']} (get {config['source']})")
    dataset = SegmentationDataset(name, config, root, ids)
    for index in (0, len(ids) - 1):  # a half-unpacked download fails here, not deep inside a notebook
        if not dataset.image_path(index).is_file():
            raise MissingDatasetError(f"{name}: image {dataset.image_path(index)} is missing (get {config['source']})")
    return dataset


def write_fake_layout(name: str, config: dict, root: Path, size) -> None:
    """The rehearsal's stand-in: a few noise images with random label maps in the real layout. Datasets that share a
    folder (VOC21/20, Context60/59, COCO-Stuff/Object) get every file of that folder, so either writer serves both."""
    from clipbook.data.fake_layouts import write_image

    siblings = [c for c in SEGMENTATION_DATASETS.values() if c["folder"] == config["folder"]]
    count = 2 * size.images_per_class["val"] + 2
    ids = [f"city{i % 2}/img{i:04d}" if "leftImg8bit" in config["images"] else f"{2010 + i:04d}_{i:06d}"
           for i in range(count)]
    for sibling in siblings:
        if sibling["split_file"]:
            split_file = root / sibling["folder"] / sibling["split_file"]
            split_file.parent.mkdir(parents=True, exist_ok=True)
            split_file.write_text("\n".join(ids) + "\n")
    for index, image_id in enumerate(ids):
        image = root / config["folder"] / config["images"] / f"{image_id}{config['image_suffix']}"
        write_image(image, f"{name}/{image_id}")
        with Image.open(image) as written:
            width, height = written.size
        rng = np.random.default_rng([index, len(config["classnames"])])
        for sibling in siblings:
            top = len(sibling["classnames"]) + (1 if sibling["reduce_zero_label"] else 0)
            label = rng.integers(0, top, size=(height, width)).astype(np.uint8)
            label[rng.random((height, width)) < 0.05] = IGNORE_INDEX
            path = root / sibling["folder"] / sibling["labels"] / f"{image_id}{sibling['label_suffix']}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(label).save(path)


register_kind("mmseg", load_segmentation_dataset)
register_datasets(SEGMENTATION_DATASETS)
