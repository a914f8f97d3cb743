"""Datasets stored as folders of class sub-folders, ImageFolder-style.

Two kinds, differing only in where the folders are:

- kind "packaged": images installed by a Python package that clipbook depends on (pinned), so they are
  on every machine without a download step.

      load_dataset("textile_sts", "all")      # 2,000 simulated textile images of conformal-clip-data

- kind "image-folder": real data the user provides under the data root ($CLIPBOOK_DATA, default ~/data).

      load_dataset("qe_genai_pan", "test")    # $CLIPBOOK_DATA/qe_genai/data/pan_images/test/<class>/*
      load_dataset("office31_amazon", "all")  # $CLIPBOOK_DATA/office31/amazon/<class>/* (a domain-adaptation domain)

A config names the split folders (`splits`: split name -> sub-folder, "" for the folder itself) and the
class folders in label order (`classes`), so label 0 is the nominal class whatever the folders sort to.
Images are listed in sorted file-name order per class, classes in config order; a class folder missing
from a split is allowed (the pipe-staple learning split holds only good parts), an unknown one is an
error (skipping it would silently shrink the data). Importing this module registers every dataset.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import os
from pathlib import Path, PurePosixPath

from clipbook.data.real import ImageListDataset
from clipbook.data.registry import MissingDatasetError, register_datasets, register_kind

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
QE_GENAI_REPO = "https://github.com/fmegahed/qe_genai"
QE_GENAI_FOLDER = "qe_genai"  # the clone's folder name under the data root


def _qe_genai_config(title: str, folder: str, classes: list[str], splits: dict[str, str]) -> dict:
    """A data set of Megahed et al. (2025)'s repository, read from a clone under the data root."""
    return {"kind": "image-folder", "title": title, "folder": f"{QE_GENAI_FOLDER}/data/{folder}", "classes": classes,
            "splits": splits, "template": "a photo of a {}.",
            "source": f"git clone {QE_GENAI_REPO} into the data root (about 320 MB; MIT, pipe_staple CC BY-NC-SA 4.0)"}


# The domain-adaptation benchmarks in Dassl's layout (Dassl.pytorch DATASETS.md; `da/office31.py`, `da/office_home.py`),
# which the CLIP domain papers (AD-CLIP, IP-CLIP) read: one folder per domain, one sub-folder per class, labels in
# sorted folder order. Each domain is one dataset with a single split "all" (Dassl trains and tests on whole domains;
# a notebook that wants held-out images splits them itself).
OFFICE31_CLASSES = sorted([
    "back_pack", "bike", "bike_helmet", "bookcase", "bottle", "calculator", "desk_chair", "desk_lamp",
    "desktop_computer", "file_cabinet", "headphones", "keyboard", "laptop_computer", "letter_tray", "mobile_phone",
    "monitor", "mouse", "mug", "paper_notebook", "pen", "phone", "printer", "projector", "punchers", "ring_binder",
    "ruler", "scissors", "speaker", "stapler", "tape_dispenser", "trash_can"])
OFFICE_HOME_CLASSES = sorted([
    "Alarm_Clock", "Backpack", "Batteries", "Bed", "Bike", "Bottle", "Bucket", "Calculator", "Calendar", "Candles",
    "Chair", "Clipboards", "Computer", "Couch", "Curtains", "Desk_Lamp", "Drill", "Eraser", "Exit_Sign", "Fan",
    "File_Cabinet", "Flipflops", "Flowers", "Folder", "Fork", "Glasses", "Hammer", "Helmet", "Kettle", "Keyboard",
    "Knives", "Lamp_Shade", "Laptop", "Marker", "Monitor", "Mop", "Mouse", "Mug", "Notebook", "Oven", "Pan",
    "Paper_Clip", "Pen", "Pencil", "Postit_Notes", "Printer", "Push_Pin", "Radio", "Refrigerator", "Ruler",
    "Scissors", "Screwdriver", "Shelf", "Sink", "Sneakers", "Soda", "Speaker", "Spoon", "TV", "Table", "Telephone",
    "ToothBrush", "Toys", "Trash_Can", "Webcam"])
OFFICE31_SOURCE = ("Office-31 (Saenko et al., ECCV 2010): download it (e.g. https://opendatalab.com/OpenDataLab/Office-31, "
                   "linked from the IP-CLIP README) and arrange it as Dassl does: office31/<amazon|dslr|webcam>/<class>/ "
                   "(drop the original archive's images/ level)")
OFFICE_HOME_SOURCE = ("Office-Home (Venkateswara et al., CVPR 2017; research and educational use only): download it from "
                      "https://www.hemanthdv.org/officeHomeDataset.html and arrange it as Dassl does: "
                      "office_home/<art|clipart|product|real_world>/<class>/ (the archive's Art, Clipart, Product and "
                      "'Real World' folders, renamed)")


def _domain_config(benchmark: str, folder: str, domain: str, classes: list[str], source: str) -> dict:
    return {"kind": "image-folder", "title": f"{benchmark} {domain.replace('_', ' ')}", "folder": f"{folder}/{domain}",
            "classes": classes, "splits": {"all": ""}, "template": "a photo of a {}.", "source": source}


DOMAIN_DATASETS: dict[str, dict] = {
    **{f"office31_{domain}": _domain_config("Office-31", "office31", domain, OFFICE31_CLASSES, OFFICE31_SOURCE)
       for domain in ("amazon", "dslr", "webcam")},
    **{f"officehome_{domain}": _domain_config("Office-Home", "office_home", domain, OFFICE_HOME_CLASSES,
                                              OFFICE_HOME_SOURCE)
       for domain in ("art", "clipart", "product", "real_world")},
}

PACKAGED_DATASETS: dict[str, dict] = {
    # Megahed et al. (2025) Exp. 3: stochastic textured surfaces simulated with the R package spc4sts
    # (nominal; local defects; global defects = both autoregressive parameters 5 % lower), 250 x 250 px.
    "textile_sts": {
        "kind": "packaged", "title": "simulated textile (conformal-clip-data)", "package": "conformal_clip_data",
        "distribution": "conformal-clip-data", "folder": "data/textile_images/simulated",
        "classes": ["nominal", "local", "global"], "splits": {"all": ""}, "template": "a photo of a {} textile.",
        "source": "pip install conformal-clip-data (a clipbook dependency; `pip install -e .` installs it)"},
}

IMAGE_FOLDER_DATASETS: dict[str, dict] = {
    "qe_genai_pan": _qe_genai_config("metallic pans (Exp. 1)", "pan_images", ["nominal", "defective"],
                                     {"train": "train", "test": "test"}),
    "qe_genai_extrusion": _qe_genai_config("3D-printing extrusion profiles (Exp. 2)", "extrusion_images",
                                           ["normal", "over", "under"], {"all": ""}),
    "qe_genai_textile": _qe_genai_config("simulated textile (Exp. 3)", "textile_images/simulated",
                                         ["nominal", "local", "global"], {"all": ""}),
    "qe_genai_pipe_staple": _qe_genai_config("Renault pipe staples (Exp. 4)", "pipe_staple", ["good", "missing"],
                                             {"train": "train", "test": "test"}),
    "qe_genai_microstructure": _qe_genai_config(
        "microstructures (Exp. 5)", "microstructure",
        ["Uniform"] + [f"{kind}_{level}" for kind in ("Band", "Bimodal", "SingleCrystal")
                       for level in ("low", "medium", "high")],
        {"all": ""}),
}


class PackagedImageDataset(ImageListDataset):
    """Images installed by a Python package; identified by the package's name and version and its file list."""

    def __init__(self, *args, distribution: str, version: str, file_sizes: list[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.distribution, self.version, self.file_sizes = distribution, version, list(file_sizes)

    def fingerprint(self) -> dict:
        digest = hashlib.sha256()
        for path, label, size in zip(self.relative_paths, self.labels.tolist(), self.file_sizes):
            digest.update(f"{path}\t{label}\t{size}\n".encode())
        return {"dataset": self.name, "split": self.split, "package": self.distribution, "version": self.version,
                "count": len(self), "files_sha256": digest.hexdigest()}


def _list_class_folders(root: Path, split_dir: PurePosixPath, classes: list[str], what: str,
                        guidance: str) -> tuple[list[str], list[int]]:
    """Relative paths (to `root`) and labels of every image in root/split_dir/<class>/, classes in config order."""
    directory = root / split_dir
    if not directory.is_dir():
        raise MissingDatasetError(f"{what} not found: {directory}\n{guidance}")
    with os.scandir(directory) as entries:
        folders = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    unknown = [folder for folder in folders if folder not in classes]
    if unknown:
        raise ValueError(f"unexpected class folder(s) {', '.join(unknown)} in {directory}; "
                         f"expected only: {', '.join(classes)}")
    relative_paths, labels = [], []
    for label, folder in enumerate(classes):
        if folder not in folders:
            continue
        with os.scandir(directory / folder) as entries:
            names = sorted(e.name for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))
        relative_paths += [str(split_dir / folder / name) for name in names]
        labels += [label] * len(names)
    if not relative_paths:
        raise MissingDatasetError(f"no images in the class folders ({', '.join(classes)}) of {directory}\n{guidance}")
    return relative_paths, labels


def _split_dir(name: str, config: dict, split: str) -> PurePosixPath:
    if split not in config["splits"]:
        raise ValueError(f"unknown split {split!r} for {name}; known splits: {', '.join(config['splits'])}")
    return PurePosixPath(config["splits"][split])


def package_root(config: dict) -> Path:
    """The folder of a packaged dataset inside its installed package."""
    try:
        package = importlib.resources.files(config["package"])
    except ModuleNotFoundError as err:
        raise MissingDatasetError(f"{config['title']}: the Python package {config['distribution']!r} is not "
                                  f"installed.\nTo provide it: {config['source']}") from err
    return Path(str(package)) / config["folder"]


def _packaged_dataset(name: str, config: dict, split: str, root: Path) -> PackagedImageDataset:
    """`root` (the data root) is not used: the images live inside the installed package."""
    split_dir = _split_dir(name, config, split)
    images_root = package_root(config)
    relative_paths, labels = _list_class_folders(
        images_root, split_dir, config["classes"], f"{config['title']} images",
        f"The package {config['distribution']!r} is installed but lacks its data folder; reinstall it: "
        f"{config['source']}")
    sizes = [(images_root / path).stat().st_size for path in relative_paths]
    return PackagedImageDataset(name, split, images_root, relative_paths, labels, config["classes"],
                                config["template"], distribution=config["distribution"],
                                version=importlib.metadata.version(config["distribution"]), file_sizes=sizes)


def _image_folder_dataset(name: str, config: dict, split: str, root: Path) -> ImageListDataset:
    split_dir = PurePosixPath(config["folder"]) / _split_dir(name, config, split)
    layout = (f"Expected layout: {root / split_dir}/<class>/<image>, class folders "
              f"{', '.join(config['classes'])}.")
    relative_paths, labels = _list_class_folders(root, split_dir, config["classes"], f"{config['title']} images",
                                                 f"{layout}\nTo provide it: {config['source']}.")
    return ImageListDataset(name, split, root, relative_paths, labels, config["classes"], config["template"])


LOADERS = {"packaged": _packaged_dataset, "image-folder": _image_folder_dataset}


def load_folder_dataset(name: str, config: dict, split: str, root: str | os.PathLike) -> ImageListDataset:
    """The `split` of a registered packaged or image-folder dataset (`root` is the data root)."""
    return LOADERS[config["kind"]](name, config, split, Path(root))


for _kind in LOADERS:
    register_kind(_kind, load_folder_dataset)
register_datasets({**PACKAGED_DATASETS, **IMAGE_FOLDER_DATASETS, **DOMAIN_DATASETS})
