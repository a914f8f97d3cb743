"""Generated stand-ins for the real datasets, in each dataset's exact folder layout and split files.

The rehearsal profile (README, "Rehearsal") runs the paper profile's code path with random weights on these:
`ensure_layouts(rehearsal_data_root())` writes every registered file-backed dataset once, and the session
points `$CLIPBOOK_DATA` at that root, so the real loaders (`real.py`, `groups.py`, `packaged.py`) read them
unchanged. The loaders' tests read the same layouts, so a layout and its loader cannot drift apart.

    write_layout("eurosat", tmp_path)                 # tmp_path/eurosat/2750/... + split_zhou_EuroSAT.json
    write_layout("imagenet", tmp_path, LayoutSize(images_per_class={"train": 1, "val": 1}))

What is real about a layout: folder names, file names and formats of the split and class lists, label
conventions (ImageNet's 1000 classes with wnids, ImageNet-A/R's 200-class subsets, Waterbirds' groups,
CelebA's attribute columns). What is not: the images (small seeded noise of varying size and aspect, so
every resize and crop path runs) and the class names of datasets whose class count is free (`classes`
per dataset). ImageNet and its variants keep all 1000 classes as folders and class names, but only
`imagenet_classes_with_images` of them hold images, to keep the rehearsal's encoding time small.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from clipbook.data import captions, cue_conflict, feature_arrays, mmvp, real, registry, segmentation

LAYOUT_VERSION = 3  # bump when a writer changes, so cached layouts are rewritten
MARKER_FILE = ".clipbook-fake-layout.json"  # one per dataset folder: the version and size it was written with


@dataclass(frozen=True)
class LayoutSize:
    """How much a generated layout holds: images per class for each split, and classes where the count is free."""
    # "all": the single split of image-folder sets, which notebooks split themselves (a test set and learning sets)
    images_per_class: dict = field(default_factory=lambda: {"train": 2, "val": 1, "test": 1, "all": 4})
    classes: int = 5  # top-5 accuracy (classify-by-description) needs five; every real dataset has more
    imagenet_classes_with_images: int = 8


DEFAULT_SIZE = LayoutSize()


def _image_count(size: LayoutSize, split: str) -> int:
    return int(size.images_per_class.get(split, 1))


def write_image(path: Path, seed: str) -> None:
    """A small seeded noise JPEG, 40-96 px a side (never square, never the model's size)."""
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))
    width, height = int(rng.integers(40, 97)), int(rng.integers(40, 97))
    if width == height:
        height += 1
    coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=85)


def _fake_classnames(config: dict, count: int) -> list[str]:
    # spaces and a hyphen, as real class names have ("Annual Crop Land", "Boeing 737-200")
    return [f"{config['title']} class-{index} name" for index in range(count)]


def _write_coop(name: str, config: dict, root: Path, size: LayoutSize) -> None:
    dataset_dir = root / config["folder"]
    classnames = _fake_classnames(config, size.classes)
    if config["split_format"] == "zhou_json":
        split_lists = {}
        for split in config["splits"]:
            items = []
            for label, classname in enumerate(classnames):
                for index in range(_image_count(size, split)):
                    impath = f"c{label:03d}/{split}_{index:03d}.jpg"  # relative to the image folder, as CoOp's
                    write_image(dataset_dir / config["image_dir"] / impath, f"{name}/{impath}")
                    items.append([impath, label, classname])
            split_lists[split] = items
        (dataset_dir / config["split_file"]).write_text(json.dumps(split_lists, indent=1))
    elif config["split_format"] == "variant_lists":
        (dataset_dir / config["classes_file"]).write_text("".join(f"{c}\n" for c in classnames))
        for split in config["splits"]:
            lines = []
            for label, classname in enumerate(classnames):
                for index in range(_image_count(size, split)):
                    image_id = f"{split[:2]}{label:03d}{index:03d}"
                    write_image(dataset_dir / config["image_dir"] / f"{image_id}.jpg", f"{name}/{image_id}")
                    lines.append(f"{image_id} {classname}\n")
            (dataset_dir / config["split_list"].format(split=split)).write_text("".join(lines))
    else:
        raise ValueError(f"{name}: no fake layout for split format {config['split_format']!r}")


def imagenet_wnids_and_classnames() -> tuple[list[str], list[str]]:
    """ImageNet's 1000 class names (as open_clip ships them) with stand-in wnids in sorted order."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return [f"n{index:08d}" for index in range(len(IMAGENET_CLASSNAMES))], list(IMAGENET_CLASSNAMES)


def _write_classnames_file(path: Path) -> None:
    wnids, classnames = imagenet_wnids_and_classnames()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{wnid} {classname}\n" for wnid, classname in zip(wnids, classnames)))


def _classes_with_images(n_classes: int, wanted: int) -> set[int]:
    return set(np.linspace(0, n_classes - 1, num=min(wanted, n_classes)).round().astype(int).tolist())


def _write_class_folders(image_dir: Path, folders: list[str], with_images: set[int], count: int, seed: str) -> None:
    for position, folder in enumerate(folders):
        (image_dir / folder).mkdir(parents=True, exist_ok=True)  # every class exists, even without images
        if position in with_images:
            for index in range(count):
                write_image(image_dir / folder / f"{folder}_{index:04d}.JPEG", f"{seed}/{folder}/{index}")


def _write_imagenet(name: str, config: dict, root: Path, size: LayoutSize) -> None:
    dataset_dir = root / config["folder"]
    _write_classnames_file(dataset_dir / real.CLASSNAMES_FILE)
    wnids, _ = imagenet_wnids_and_classnames()
    with_images = _classes_with_images(len(wnids), size.imagenet_classes_with_images)
    for split, split_dir in sorted(set((s, d) for s, d in config["split_dirs"].items() if s != "test")):
        _write_class_folders(dataset_dir / config["image_dir"] / split_dir, wnids, with_images,
                             _image_count(size, split), f"{name}/{split}")


# ImageNet-A and -R hold 200 of the 1000 classes; which 200 does not matter to the loaders
IMAGENET_SUBSET_VARIANTS = {"imagenet_a": 200, "imagenet_r": 200}


def _write_imagenet_variant(name: str, config: dict, root: Path, size: LayoutSize) -> None:
    dataset_dir = root / config["folder"]
    _write_classnames_file(dataset_dir / real.CLASSNAMES_FILE)  # CoOp copies imagenet's into every variant folder
    wnids, _ = imagenet_wnids_and_classnames()
    labels = list(range(len(wnids)))
    if name in IMAGENET_SUBSET_VARIANTS:
        labels = sorted(random.Random(name).sample(labels, IMAGENET_SUBSET_VARIANTS[name]))
    folders = [wnids[label] if config["class_folders"] == "wnid" else str(label) for label in labels]
    with_images = _classes_with_images(len(folders), size.imagenet_classes_with_images)
    _write_class_folders(dataset_dir / config["image_dir"], folders, with_images, _image_count(size, "test"), name)


def _write_waterbirds(name: str, config: dict, root: Path, size: LayoutSize) -> None:
    from clipbook.data.groups import SPLIT_CODES

    dataset_dir = root / config["folder"]
    rows = []
    for split, code in SPLIT_CODES.items():
        for label in range(len(config["classnames"])):
            for place in range(len(config["attribute_values"])):
                for index in range(_image_count(size, split)):
                    filename = f"{label:03d}.species_{label}/{split}_{place}_{index:03d}.jpg"
                    write_image(dataset_dir / filename, f"{name}/{filename}")
                    rows.append({"img_id": len(rows), "img_filename": filename, "y": label, "split": code,
                                 "place": place, "place_filename": f"/x/{place}.jpg"})
    with open(dataset_dir / "metadata.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


CELEBA_ATTRIBUTES = ("5_o_Clock_Shadow", "Blond_Hair", "Male", "Young")  # a few of the 40, target and attribute among them


def _write_celeba(name: str, config: dict, root: Path, size: LayoutSize) -> None:
    """torchvision's layout: a count line, a header line, then "<id> <+-1 ...>"; partitions "<id> <0|1|2>"."""
    from clipbook.data.groups import SPLIT_CODES

    dataset_dir = root / config["folder"]
    attribute_lines, partition_lines = [], []
    for split, code in SPLIT_CODES.items():
        for blond in (0, 1):
            for male in (0, 1):
                for _ in range(_image_count(size, split)):
                    image_id = f"{len(partition_lines) + 1:06d}.jpg"
                    write_image(dataset_dir / "img_align_celeba" / image_id, f"{name}/{image_id}")
                    values = {"Blond_Hair": blond, "Male": male}
                    attribute_lines.append(image_id + "".join(
                        f" {1 if values.get(a, 0) else -1:>2}" for a in CELEBA_ATTRIBUTES) + "\n")
                    partition_lines.append(f"{image_id} {code}\n")
    (dataset_dir / "list_attr_celeba.txt").write_text(
        f"{len(attribute_lines)}\n{' '.join(CELEBA_ATTRIBUTES)}\n" + "".join(attribute_lines))
    (dataset_dir / "list_eval_partition.txt").write_text("".join(partition_lines))


def _write_image_folder(name: str, config: dict, root: Path, size: LayoutSize) -> None:
    for split, split_dir in config["splits"].items():
        for classname in config["classes"]:
            for index in range(_image_count(size, split)):
                relative = Path(config["folder"], split_dir, classname, f"{split}_{index:03d}.png")
                write_image(root / relative, f"{name}/{relative}")


def _write_qe_genai_stored_predictions(name: str, config: dict, root: Path, size: LayoutSize) -> None:
    """results/exp01_results.csv of the qe_genai clone: the official Exp. 1 predictions of its 100 test images."""
    path = root / config["folder"].split("/")[0] / "results" / "exp01_results.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["image_name", "classification_result"])
        writer.writerows([f"{index:03d}.png", ("Nominal", "Defective")[index % 2]] for index in range(100))


def _write_prompt_images(name: str, config: dict, root: Path, size: LayoutSize) -> None:
    """images/<n>.png and prompts.txt (one line per image), as `prompt_images` reads them; a few prompts repeat."""
    from clipbook.data import prompt_images

    count = 4 * size.classes * _image_count(size, "all")
    folder = root / config["folder"]
    for index in range(count):
        write_image(folder / prompt_images.IMAGES_FOLDER / f"{index}.png", f"{name}/{index}")
    animals, things = ("cat", "dog", "fox", "owl"), ("ball", "apple", "hat", "book", "lamp")
    (folder / prompt_images.PROMPTS_FILE).write_text(
        "".join(f"a photo of a {animals[i % 4]} with a {things[(i // 2) % 5]}\n" for i in range(count)))


def _write_chest_xray(name: str, config: dict, root: Path, size: LayoutSize) -> None:
    """NIH-CXR14 + NEATX or MIMIC-CXR as `chest_xray.py` reads them: every (finding, drain or sex) combination in
    both sexes and several age groups, so each subset the evaluation forms has positives and negatives."""
    folder = root / config["folder"]
    count = max(12, 4 * _image_count(size, "test"))
    ages = [22, 40, 58, 72, 85, 31]
    if name == "cxr14-neatx":
        entries, drains = [], []
        for index in range(count):
            image_id = f"{index:08d}_000.png"
            write_image(folder / "imgs" / image_id, f"{name}/{image_id}")
            labels = "Pneumothorax" if index % 3 == 0 else ("No Finding" if index % 3 == 1 else "Effusion|Atelectasis")
            entries.append([image_id, labels, ages[index % len(ages)], "MF"[index % 2]])
            drains.append([image_id, (index // 3) % 2])
        with open(folder / "Data_Entry_2017.csv", "w", newline="") as file:
            csv.writer(file).writerows([["Image Index", "Finding Labels", "Patient Age", "Patient Gender"], *entries])
        with open(folder / "NIH-CX14_TubeAnnotations_NonExperts_aggregated.csv", "w", newline="") as file:
            csv.writer(file).writerows([["Image Index", "Drain"], *drains])
        (folder / "test_list.txt").write_text("".join(f"{row[0]}\n" for row in entries))
        return
    rows = []
    for index in range(count):
        relative = f"files/p{index:02d}/s{index:04d}.jpg"
        write_image(folder / relative, f"{name}/{relative}")
        rows.append([relative, "report text", ("Female", "Male")[index % 2], ("White", "Black", "Asian")[index % 3],
                     ages[index % len(ages)], int(index % 3 == 0)])
    with open(folder / "test_preproc_filtered.csv", "w", newline="") as file:
        csv.writer(file).writerows([["path_preproc", "findings", "sex", "race", "age", config["finding"]], *rows])


# CapS-Adapter's support sets live under `$CLIPBOOK_DATA/caps` (the caps-adapter notebook's default caps_root),
# in the folders of the official scripts' dataset names (the notebook's OFFICIAL_DATASET_NAMES)
CAPS_FOLDER = "caps"
CAPS_DATASET_NAMES = {"oxford_pets": "oxfordpets", "stanford_cars": "stanfordcars", "oxford_flowers": "flowers102",
                      "fgvc_aircraft": "fgvcaircraft"}


def _write_caps_support_set(name: str, config: dict, root: Path, size: LayoutSize) -> None:
    """The CapS-Adapter output of generate_caps.py for a CoOp dataset: caps_sd/<dataset>/<class>/ with the
    generated PNGs and updated_data.json, a list of {"image_path", "caption"} (the caption is the prompt
    "A photo of <class>. <ShareCaptioner caption>")."""
    dataset_dir = root / CAPS_FOLDER / "caps_sd" / CAPS_DATASET_NAMES.get(name, name)
    if dataset_dir.exists():
        shutil.rmtree(dataset_dir)
    for classname in _fake_classnames(config, size.classes):
        class_dir = dataset_dir / classname.lower().replace(" ", "_").replace("/", "")
        entries = []
        for index in range(_image_count(size, "all")):
            image = class_dir / f"{index:04d}.png"
            write_image(image, f"caps/{name}/{classname}/{index}")
            entries.append({"image_path": str(image.relative_to(root / CAPS_FOLDER)),
                            "caption": f"A photo of {classname}. A generated image, number {index}."})
        (class_dir / "updated_data.json").write_text(json.dumps(entries, indent=1))


def _write_fas(name: str, config: dict, root: Path, size: LayoutSize) -> None:
    """Hyp-OC's layout (`fas.py`): frames under hyp-oc/datasets/<folder>, split files under hyp-oc/data/<folder>.

    A CSV split is `path,label` rows (label 0 live, 1 spoof); the training CSVs of the official `data/` hold live
    frames only. OULU-NPU lists `+1,<video>` / `-1,<video>` in its protocol files, each video a folder of frames.
    `images_per_class[split]` frames per label (two per video for OULU-NPU)."""
    from clipbook.data import fas

    images, splits = root / fas.FOLDER / "datasets", root / fas.FOLDER / "data" / config["folder"]
    oulu = config["folder"] == "OULU_NPU"
    for split, split_file in config["splits"].items():
        path = splits / split_file
        if path.exists():  # val and test share one file in four of the five sets
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        labels = (0,) if split == "train" and not oulu else (0, 1)
        count = _image_count(size, split)
        if oulu:
            lines = []
            for label in (0, 1):  # the training protocol lists attacks too; the loader keeps the live videos
                for video_index in range(max(1, count // 2)):
                    video = f"1_1_{video_index + 1:02d}_{1 if label == 0 else 2}"
                    for frame in range(2):
                        relative = f"OULU_NPU/{fas._OULU_FRAMES[split]}/{video}/{frame}.png"
                        write_image(images / relative, f"{name}/{relative}")
                    lines.append(f"{'+1' if label == 0 else '-1'},{video}\n")
            path.write_text("".join(lines))
            continue
        rows = []
        for label in labels:
            for index in range(count):
                relative = f"{config['folder']}/{split}_frames/{('real', 'attack')[label]}/video_{index:02d}_frame_0.png"
                write_image(images / relative, f"{name}/{relative}")
                rows.append((relative, label))
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["path", "label"])
            writer.writerows(rows)


# files beside a dataset's images that a notebook's paper path reads from the same clone or another tool's output
EXTRA_WRITERS = {"qe_genai_pan": _write_qe_genai_stored_predictions,
                 **{name: _write_caps_support_set for name, config in registry.DATASETS.items()
                    if config["kind"] == "coop"}}

GROUP_WRITERS = {"waterbirds": _write_waterbirds, "celeba": _write_celeba}

# the registry kinds that need no files under the data root (generated or shipped with a package)
NO_FILES_KINDS = ("packaged", "toy", "toy-medical", "toy-ovss")
# registry kind -> writer(name, config, root, size), for every other kind
WRITERS = {
    "coop": _write_coop,
    "imagenet": _write_imagenet,
    "imagenet-variant": _write_imagenet_variant,
    "groups": lambda name, config, root, size: GROUP_WRITERS[name](name, config, root, size),
    "image-folder": _write_image_folder,
    "prompt-images": _write_prompt_images,
    "chest-xray": _write_chest_xray,
    "cue-conflict": cue_conflict.write_fake_layout,
    "mmvp-vlm": mmvp.write_fake_layout,
    "captions": captions.write_fake_layout,
    "feature-arrays": feature_arrays.write_fake_layout,
    "fas": _write_fas,
    "mmseg": segmentation.write_fake_layout,
}


def fakeable_datasets() -> list[str]:
    """Registered datasets read from the data root, for which a layout can be generated."""
    return sorted(name for name, config in registry.DATASETS.items() if config["kind"] in WRITERS)


def _dataset_folder(config: dict, root: Path) -> Path:
    if config["kind"] == "fas":  # frames and split files live in two trees under hyp-oc/ (fas.py)
        return root / "hyp-oc" / "datasets" / config["folder"]
    return root / config["folder"]


def _extra_folders(config: dict, root: Path) -> list[Path]:
    """Folders beside `_dataset_folder` that a layout also writes (replaced with it)."""
    return [root / "hyp-oc" / "data" / config["folder"]] if config["kind"] == "fas" else []


def write_layout(name: str, root: str | os.PathLike, size: LayoutSize = DEFAULT_SIZE) -> Path:
    """Write dataset `name`'s layout under the data root `root` (replacing what is there); returns its folder.

    Args:
        name: a registry name whose kind has a writer (`fakeable_datasets()`).
        root: the data root the loaders will read (`$CLIPBOOK_DATA` or `load_dataset(..., root=...)`).
        size: images per class and class counts.
    """
    if name not in registry.DATASETS:
        raise registry.UnknownDatasetError(
            f"unknown dataset {name!r}; known datasets: {', '.join(registry.known_datasets())}")
    config = registry.DATASETS[name]
    if config["kind"] not in WRITERS:
        raise ValueError(f"dataset {name!r} (kind {config['kind']!r}) is not read from the data root, so it has no "
                         f"fake layout; fakeable: {', '.join(fakeable_datasets())}")
    folder = _dataset_folder(config, Path(root))
    for stale in (folder, *_extra_folders(config, Path(root))):
        if stale.exists():
            shutil.rmtree(stale)
    folder.mkdir(parents=True)
    WRITERS[config["kind"]](name, config, Path(root), size)
    if name in EXTRA_WRITERS:
        EXTRA_WRITERS[name](name, config, Path(root), size)
    (folder / MARKER_FILE).write_text(json.dumps({"version": LAYOUT_VERSION, "size": asdict(size)}, sort_keys=True))
    return folder


def ensure_layouts(root: str | os.PathLike, names: list[str] | None = None, size: LayoutSize = DEFAULT_SIZE) -> Path:
    """Write the layouts of `names` (default: every fakeable dataset) under `root` unless they are already there
    with this version and size; safe to call from parallel kernels (one writer at a time). Returns `root`."""
    from clipbook.cache import file_lock

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    wanted = {"version": LAYOUT_VERSION, "size": asdict(size)}
    with file_lock(root / "layouts"):
        for name in names or fakeable_datasets():
            marker = _dataset_folder(registry.DATASETS[name], root) / MARKER_FILE
            if marker.exists() and json.loads(marker.read_text()) == json.loads(json.dumps(wanted)):
                continue
            write_layout(name, root, size)
    return root


DESCRIPTORS_FOLDER = "descriptors"  # under the rehearsal data root, one stand-in per released descriptor source
DESCRIPTORS_PER_CLASS = 3


def descriptor_stand_in(classnames: list[str]) -> dict[str, list[str]]:
    """A released descriptor file's format (classify-by-description's descriptors_*.json, NoLA's
    descriptions/generic/*.json, CapS' CuPL_prompts_*.json): {class name: [sentence, ...]} in label order, keyed
    by the name with spaces, as the files are. Descriptors start the ways the official sentence rules branch on.
    A name that repeats (OpenAI's ImageNet list has two "missile"s) gets a suffix, as the released ImageNet file's
    own names ("projectile") differ from it: one entry per class, so files matched by position keep their order."""
    openings = ("a shape with sharp edges", "has a striped surface", "used in a generated dataset")
    described: dict[str, list[str]] = {}
    for name in classnames:
        key = name.replace("_", " ")
        key = key if key not in described else f"{key} ({sum(k.startswith(key) for k in described) + 1})"
        described[key] = [f"{openings[i % len(openings)]} ({key}, {i})" for i in range(DESCRIPTORS_PER_CLASS)]
    return described


def write_descriptor_file(source: str, dataset: str, root: str | os.PathLike) -> Path:
    """Write the stand-in for descriptor source `source`, describing registry dataset `dataset`'s generated
    classes (its layout under `root` is written first if missing): `root/descriptors/<source>.json`."""
    ensure_layouts(root, [dataset])
    classnames = registry.load_dataset(dataset, "test", root=root).classnames  # every described dataset has one
    described = descriptor_stand_in(list(classnames))
    path = Path(root) / DESCRIPTORS_FOLDER / f"{source}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(described, indent=1))
    return path


def ensure_descriptor_file(source: str, dataset: str, root: str | os.PathLike) -> Path:
    """`write_descriptor_file` once per source (safe from parallel kernels)."""
    from clipbook.cache import file_lock

    path = Path(root) / DESCRIPTORS_FOLDER / f"{source}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        if not path.exists():
            write_descriptor_file(source, dataset, root)
    return path


def rehearsal_data_root() -> Path:
    """Where the rehearsal profile's generated datasets live: $CLIPBOOK_CACHE/rehearsal-data."""
    from clipbook.cache import cache_root

    return cache_root() / "rehearsal-data"
