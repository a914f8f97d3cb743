"""Image-caption datasets for retrieval (kind "captions"): COCO and Flickr30k in Karpathy's split, COCO val2017 with
its official caption annotations, and Urban-1k's long captions.

    coco = load_dataset("coco_karpathy_test", "test")   # $CLIPBOOK_DATA/coco/dataset_coco.json + val2014/...
    texts, text_image = coco.caption_pairs()            # every caption, and the index of its image

Layouts, as the retrieval code of the papers reads them:
- "karpathy": Karpathy's split file (`dataset_coco.json`, `dataset_flickr30k.json` from
  cs.stanford.edu/people/karpathy/deepimagesent; the remote-sensing sets RSICD, RSITMD and UCM-captions ship theirs in
  the same format): {"images": [{"filepath"?, "filename", "split",
  "sentences": [{"raw": ...}]}]}; images under `<folder>/<filepath>/<filename>` (COCO) or
  `<folder>/flickr30k-images/<filename>` (Flickr30k, no filepath). The 5k / 1k test splits of CLIP-style
  retrieval tables (and of CLIP_benchmark's `mscoco_captions` and `flickr30k`).
- "coco-json": COCO's `annotations/captions_val2017.json` ({"images": [{"id", "file_name"}], "annotations":
  [{"image_id", "caption"}]}) with the images in `val2017/` (folder `coco2017`): what Long-CLIP's COCO evaluation reads.
- "urban1k": Urban-1k as Long-CLIP releases it: `Urban1k/image/<n>.jpg` and `Urban1k/caption/<n>.txt` (one long
  caption per image, matched by file stem).
Images are in file order of the annotation (Karpathy, COCO) or sorted by stem (Urban-1k). Every image must have at
least one caption; a missing image file is reported when the set is opened, not mid-encoding.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from clipbook.data.real import ImageListDataset
from clipbook.data.registry import MissingDatasetError, register_datasets, register_kind

_KARPATHY = "Karpathy's split file from https://cs.stanford.edu/people/karpathy/deepimagesent/ ({file})"
CAPTION_DATASETS: dict[str, dict] = {
    "coco_karpathy_test": {
        "kind": "captions", "format": "karpathy", "title": "MS-COCO 5k test (Karpathy split)", "folder": "coco",
        "annotation": "dataset_coco.json", "image_dir": "", "splits": ["test", "val"], "template": "{}",
        "source": "images: val2014.zip from https://cocodataset.org into coco/val2014/; "
                  + _KARPATHY.format(file="caption_datasets.zip: dataset_coco.json into coco/")},
    "flickr30k_test": {
        "kind": "captions", "format": "karpathy", "title": "Flickr30k 1k test (Karpathy split)", "folder": "flickr30k",
        # "train" (29k images, the same file and image folder) is what fine-tuning papers (m2-mix) train on
        "annotation": "dataset_flickr30k.json", "image_dir": "flickr30k-images", "splits": ["test", "val", "train"],
        "template": "{}",
        "source": "images: flickr30k-images/ from https://shannon.cs.illinois.edu/DenotationGraph/ (on request) into "
                  "flickr30k/; " + _KARPATHY.format(file="caption_datasets.zip: dataset_flickr30k.json into flickr30k/")},
    "coco_val2017": {
        "kind": "captions", "format": "coco-json", "title": "MS-COCO val2017 (5k images, Long-CLIP's COCO evaluation)",
        "folder": "coco2017", "annotation": "annotations/captions_val2017.json", "image_dir": "val2017",
        "splits": ["test"], "template": "{}",
        "source": "val2017.zip and annotations_trainval2017.zip from https://cocodataset.org, unpacked into coco2017/ "
                  "(a folder of its own: the Karpathy split's coco/ holds the 2014 images)"},
    "coco_train2017": {
        "kind": "captions", "format": "coco-json", "title": "MS-COCO Captions train2017 (118k images, CLIP-Refine's "
                                                            "post-pre-training set)",
        "folder": "coco2017-train", "annotation": "annotations/captions_train2017.json", "image_dir": "train2017",
        "splits": ["train"], "template": "{}",
        "source": "train2017.zip and annotations_trainval2017.zip from https://cocodataset.org, unpacked into "
                  "coco2017-train/ (a folder of its own: a generated rehearsal layout replaces its whole folder, and "
                  "coco2017/ is coco_val2017's)"},
    "urban1k": {
        "kind": "captions", "format": "urban1k", "title": "Urban-1k (long captions, Long-CLIP)", "folder": "Urban1k",
        "annotation": "caption", "image_dir": "image", "splits": ["test"], "template": "{}",
        "source": "Urban1k.zip from https://huggingface.co/datasets/BeichenZhang/Urban1k, unpacked into Urban1k/ "
                  "(image/<n>.jpg and caption/<n>.txt)"},
    # Remote-sensing caption sets in the Karpathy format their releases use (no "filepath"; images in one folder).
    # RS-M-CLIP and the RS retrieval papers it compares with evaluate on their test splits (RSITMD has no val split).
    "rsicd": {
        "kind": "captions", "format": "karpathy", "title": "RSICD (remote-sensing image captions, 1093 test images)",
        "folder": "RSICD", "annotation": "dataset_rsicd.json", "image_dir": "RSICD_images", "splits": ["test", "val"],
        "template": "{}", "image_suffix": ".jpg",
        "source": "RSICD_images/ and dataset_rsicd.json, linked from https://github.com/201528014227051/RSICD_optimal "
                  "(Lu et al., 2017), unpacked into RSICD/"},
    "rsitmd": {
        "kind": "captions", "format": "karpathy", "title": "RSITMD (remote-sensing image-text matching, 452 test images)",
        "folder": "RSITMD", "annotation": "dataset_RSITMD.json", "image_dir": "images", "splits": ["test"],
        "template": "{}", "image_suffix": ".tif",
        "source": "images/ and dataset_RSITMD.json, linked from https://github.com/xiaoyuan1996/AMFMN (Yuan et al., "
                  "2021), unpacked into RSITMD/"},
    "ucm_captions": {
        "kind": "captions", "format": "karpathy", "title": "UCM-captions (UC Merced land use with captions)",
        "folder": "UCM_captions", "annotation": "dataset.json", "image_dir": "imgs", "splits": ["test", "val"],
        "template": "{}", "image_suffix": ".tif",
        "source": "imgs/ and dataset.json of UCM-captions (Qu et al., 2016), linked from "
                  "https://github.com/201528014227051/RSICD_optimal, unpacked into UCM_captions/"},
}


class CaptionDataset(ImageListDataset):
    """Images with several captions each (`captions[i]`). The label of image i is i and its class name is its first
    caption, so a zero-shot classifier over `classnames` with the template "{}" is text retrieval by first caption."""

    def __init__(self, *args, captions: list[list[str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.captions = [list(c) for c in captions]

    def caption_pairs(self) -> tuple[list[str], np.ndarray]:
        """Every caption in image order, and for each the index of its image (for `retrieval.recall_at_k`)."""
        texts = [text for group in self.captions for text in group]
        owner = np.repeat(np.arange(len(self.captions)), [len(group) for group in self.captions])
        return texts, owner

    def fingerprint(self) -> dict:
        base = super().fingerprint()
        base["captions_sha256"] = hashlib.sha256(json.dumps(self.captions).encode()).hexdigest()
        return base


def _read_json(path: Path, name: str, config: dict) -> dict:
    if not path.exists():
        raise MissingDatasetError(f"{name} ({config['title']}) not found: {path}\n{config['source']}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{name}: {path} is not valid JSON ({error}); re-download it") from None


def _karpathy(folder: Path, name: str, config: dict, split: str) -> tuple[list[str], list[list[str]]]:
    data = _read_json(folder / config["annotation"], name, config)
    try:
        images = [entry for entry in data["images"] if entry["split"] == split]
        paths = [str(Path(config["image_dir"] or entry.get("filepath", ""), entry["filename"])) for entry in images]
        captions = [[s["raw"].strip() for s in entry["sentences"]] for entry in images]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{name}: {config['annotation']} is not a Karpathy split file (missing {error})") from None
    return paths, captions


def _coco_json(folder: Path, name: str, config: dict, split: str) -> tuple[list[str], list[list[str]]]:
    data = _read_json(folder / config["annotation"], name, config)
    try:
        by_image = {image["id"]: [] for image in data["images"]}
        for annotation in data["annotations"]:
            by_image[annotation["image_id"]].append(annotation["caption"].strip())
        paths = [f"{config['image_dir']}/{image['file_name']}" for image in data["images"]]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{name}: {config['annotation']} is not a COCO caption file (missing {error})") from None
    return paths, [by_image[image["id"]] for image in data["images"]]


def _urban1k(folder: Path, name: str, config: dict, split: str) -> tuple[list[str], list[list[str]]]:
    image_dir, caption_dir = folder / config["image_dir"], folder / config["annotation"]
    for path in (image_dir, caption_dir):
        if not path.is_dir():
            raise MissingDatasetError(f"{name} ({config['title']}) not found: {path}\n{config['source']}")
    images = sorted((p for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")),
                    key=lambda p: (len(p.stem), p.stem))
    missing = [p.stem for p in images if not (caption_dir / f"{p.stem}.txt").exists()]
    if missing:
        raise ValueError(f"{name}: {len(missing)} images have no caption file in {caption_dir} (e.g. {missing[0]}.txt)")
    return ([f"{config['image_dir']}/{p.name}" for p in images],
            [[(caption_dir / f"{p.stem}.txt").read_text(encoding="utf-8").strip()] for p in images])


READERS = {"karpathy": _karpathy, "coco-json": _coco_json, "urban1k": _urban1k}


def load_captions(name: str, config: dict, split: str, root: Path) -> CaptionDataset:
    if split not in config["splits"]:
        raise ValueError(f"unknown split {split!r} for {name}; known splits: {', '.join(config['splits'])}")
    folder = Path(root) / config["folder"]
    paths, captions = READERS[config["format"]](folder, name, config, split)
    if not paths:
        raise MissingDatasetError(f"{name}: no {split} images listed in {folder / config['annotation']}\n"
                                  f"{config['source']}")
    empty = [p for p, c in zip(paths, captions) if not c]
    if empty:
        raise ValueError(f"{name}: {len(empty)} images have no caption (e.g. {empty[0]})")
    absent = [p for p in paths if not (folder / p).exists()]
    if absent:
        raise MissingDatasetError(f"{name}: {len(absent)} of {len(paths)} images missing under {folder} "
                                  f"(e.g. {absent[0]})\n{config['source']}")
    return CaptionDataset(name, split, folder, paths, np.arange(len(paths)), [c[0] for c in captions], config["template"],
                          captions=captions)


def write_fake_layout(name: str, config: dict, root: Path, size) -> None:
    """The rehearsal's stand-in in the real layout: `classes * images_per_class['test']` noise images (plus as many
    for the other splits), five captions each (one long caption for Urban-1k, longer than 77 tokens)."""
    from clipbook.data.fake_layouts import write_image

    count = size.classes * int(size.images_per_class.get("test", 1))
    folder = root / config["folder"]
    things = ("cat", "dog", "bus", "kite", "boat", "tree", "chair")
    colours = ("red", "blue", "green", "white", "black")

    def caption(i: int, k: int) -> str:
        return f"a {colours[(i + k) % 5]} {things[i % 7]} next to a {things[(i + k + 1) % 7]}"

    def long(i: int) -> str:
        sentences = [f"The photo shows a street with a {things[i % 7]} in front of a building."]
        sentences += [f"On the {side} there is a {colours[(i + j) % 5]} {things[(i + j) % 7]} beside a "
                      f"{colours[(i + j + 2) % 5]} {things[(i + 2 * j) % 7]}, partly hidden by a parked car."
                      for j, side in enumerate(("left", "right", "far left", "far right", "background", "front"))]
        return " ".join(sentences)

    if config["format"] == "urban1k":
        for i in range(count):
            write_image(folder / config["image_dir"] / f"{i + 1}.jpg", f"{name}/{i}")
            path = folder / config["annotation"] / f"{i + 1}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(long(i), encoding="utf-8")
        return
    if config["format"] == "coco-json":
        files = [f"{i:012d}.jpg" for i in range(count)]
        for i, file in enumerate(files):
            write_image(folder / config["image_dir"] / file, f"{name}/{file}")
        annotation = {"images": [{"id": 1000 + i, "file_name": f} for i, f in enumerate(files)],
                      "annotations": [{"id": 5 * i + k, "image_id": 1000 + i, "caption": caption(i, k)}
                                      for i in range(count) for k in range(5)]}
    else:
        entries = []
        for split in dict.fromkeys(config["splits"] + ["train"]):  # each split once
            for i in range(count):
                filename = f"{split}_{i:06d}{config.get('image_suffix', '.jpg')}"
                sub = config["image_dir"] or "val2014"
                write_image(folder / sub / filename, f"{name}/{split}/{i}")
                entry = {"filename": filename, "split": split, "sentences": [{"raw": caption(i, k)} for k in range(5)]}
                if not config["image_dir"]:
                    entry["filepath"] = sub
                entries.append(entry)
        annotation = {"images": entries, "dataset": config["folder"]}
    path = folder / config["annotation"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(annotation), encoding="utf-8")


register_kind("captions", load_captions)
register_datasets(CAPTION_DATASETS)
