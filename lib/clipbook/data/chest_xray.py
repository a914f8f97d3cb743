"""Chest X-ray sets with per-image subgroups and shortcut labels (kind "chest-xray"), and the toy counterpart
(kind "toy-medical", `toyworld.medical`).

The layouts are those the code of Sourget et al. (arXiv 2507.21291, github.com/TheoSourget/clip_cxr_fairness)
reads, under `$CLIPBOOK_DATA`:

- **cxr14-neatx**: `CXR14/imgs/<Image Index>` (NIH-CXR14's PNGs, every original subfolder merged into one, as
  its README says), `CXR14/Data_Entry_2017.csv`, `CXR14/test_list.txt` and NEATX's
  `CXR14/NIH-CX14_TubeAnnotations_NonExperts_aggregated.csv` (column `Drain`). As `process_datasets.py`: the
  official test images, label Pneumothorax when "Pneumothorax" is among the finding labels, drain 1/0 from NEATX
  and -1 (unknown) for images NEATX does not annotate (those positives fall in neither drain subset of the
  evaluation, `fairness.marker_masks`).
- **mimic-cxr**: `MIMIC/test_preproc_filtered.csv` (columns `path_preproc` relative to `MIMIC/`, `findings`,
  `sex`, `race`, `age` and one column per finding) and the images it names, as `evaluate_performance.py` reads it;
  rows without a report (`findings`) are dropped, a missing label is 0. Credentialed (see its `source`).

Every dataset yields (RGB PIL image, label) and `attribute(name)` for its `subgroup_attributes` and, where it has
one, the marker (`marker_attribute`). Age is binned as the official code does (`[18, 25, 50, 65, 80, ∞)`).
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import numpy as np

from clipbook.data.real import ImageListDataset, read_csv_rows
from clipbook.data.registry import MissingDatasetError, register_datasets, register_kind
from clipbook.toyworld import medical

CXR14_SOURCE = ("NIH-CXR14 (public, ~45 GB): https://www.kaggle.com/datasets/nih-chest-xrays/data or "
                "https://nihcc.app.box.com/v/ChestXray-NIHCC (images, Data_Entry_2017.csv, test_list.txt); NEATX drain "
                "labels (public): NIH-CX14_TubeAnnotations_NonExperts_aggregated.csv from https://zenodo.org/records/14944064")
MIMIC_SOURCE = ("MIMIC-CXR is credentialed: create a PhysioNet account, complete the CITI 'Data or Specimens Only "
                "Research' training, request credentialed access and sign the data use agreements of MIMIC-CXR-JPG "
                "(https://physionet.org/content/mimic-cxr-jpg/2.1.0/) and MIMIC-IV (https://physionet.org/content/"
                "mimiciv/, for sex, race and age); then build MIMIC/test_preproc_filtered.csv from the official test "
                "split (the paper's repository does not publish that step: its README says 'MIMIC-CXR: TBA')")

CHEST_XRAY_DATASETS: dict[str, dict] = {
    "cxr14-neatx": {
        "kind": "chest-xray", "title": "NIH-CXR14 test split with NEATX drain labels", "folder": "CXR14",
        "finding": medical.FINDING, "marker_attribute": "drain", "subgroup_attributes": ["sex", "age_group"],
        "splits": ["test"], "source": CXR14_SOURCE,
    },
    "mimic-cxr": {
        "kind": "chest-xray", "title": "MIMIC-CXR test split with MIMIC-IV demographics", "folder": "MIMIC",
        "finding": medical.FINDING, "marker_attribute": None, "subgroup_attributes": ["sex", "race", "age_group"],
        "splits": ["test"], "source": MIMIC_SOURCE,
    },
}
TOY_MEDICAL_DATASETS: dict[str, dict] = {
    # the default cohorts; a notebook draws seeded ones with `medical.cohort_dataset` (same rates, other seeds)
    "toy-cxr": {
        "kind": "toy-medical", "title": "toy chest radiographs (toyworld.medical)", "marker_attribute": "marker",
        "subgroup_attributes": ["sex", "age_group"], "template": "Chest {}",
        "splits": {"train": {"n": 2000, "seed": 101, "prevalence": 0.3, "marker_given_finding": 0.9},
                   "val": {"n": 500, "seed": 102, "prevalence": 0.3, "marker_given_finding": 0.9},
                   "test": {"n": 2000, "seed": 103, "prevalence": 0.1, "marker_given_finding": 0.65}},
    },
}


def age_group(age: float) -> str:
    """The official bins (`pd.cut(age, [18, 25, 50, 65, 80, inf], right=False)`); "under 18" below them."""
    for low, high, name in zip((18, 25, 50, 65, 80), (25, 50, 65, 80, float("inf")), medical.AGE_GROUPS):
        if low <= age < high:
            return name
    return "under 18"


class ChestXrayDataset(ImageListDataset):
    """An image list whose images also carry named per-image attributes (sex, age group, race, drain)."""

    def __init__(self, name: str, split: str, root: Path, relative_paths: list[str], labels, finding: str,
                 attributes: dict[str, np.ndarray], marker_attribute: str | None):
        super().__init__(name, split, root, relative_paths, labels, [medical.NO_FINDING, finding], "Chest {}")
        self.attributes = {key: np.asarray(values) for key, values in attributes.items()}
        self.marker_attribute = marker_attribute
        self.subgroup_attributes = [key for key in self.attributes if key != marker_attribute]
        for key, values in self.attributes.items():
            if len(values) != len(self.labels):
                raise ValueError(f"{len(values)} values of {key!r} for {len(self.labels)} images")

    def attribute(self, name: str) -> np.ndarray:
        if name not in self.attributes:
            raise KeyError(f"{self.name} has attributes {', '.join(self.attributes)}, not {name!r}")
        return self.attributes[name]


def _require(path: Path, what: str, config: dict) -> None:
    if not path.exists():
        raise MissingDatasetError(f"{config['title']}: {what} not found: {path}\nGet it from: {config['source']}")



def _cxr14(name: str, config: dict, root: Path) -> ChestXrayDataset:
    folder = root / config["folder"]
    for relative, what in (("imgs", "image folder"), ("Data_Entry_2017.csv", "Data_Entry_2017.csv"),
                           ("test_list.txt", "test_list.txt"),
                           ("NIH-CX14_TubeAnnotations_NonExperts_aggregated.csv", "NEATX drain annotations")):
        _require(folder / relative, what, config)
    test_ids = {line.strip() for line in (folder / "test_list.txt").read_text().splitlines() if line.strip()}
    entries = [row for row in read_csv_rows(folder / "Data_Entry_2017.csv",
                                    ("Image Index", "Finding Labels", "Patient Age", "Patient Gender"))
               if row["Image Index"] in test_ids]
    drains = {row["Image Index"]: int(float(row["Drain"])) for row in
              read_csv_rows(folder / "NIH-CX14_TubeAnnotations_NonExperts_aggregated.csv", ("Image Index", "Drain"))
              if row["Drain"] not in ("", "nan")}
    images = PurePosixPath(config["folder"], "imgs")
    sexes = {"M": "male", "F": "female"}
    return ChestXrayDataset(
        name, "test", root, [str(images / row["Image Index"]) for row in entries],
        [int(config["finding"] in row["Finding Labels"].split("|")) for row in entries], config["finding"],
        {"drain": np.array([drains.get(row["Image Index"], -1) for row in entries], dtype=np.int64),
         "sex": np.array([sexes.get(row["Patient Gender"], row["Patient Gender"]) for row in entries]),
         "age_group": np.array([age_group(float(row["Patient Age"])) for row in entries])},
        config["marker_attribute"])


def _mimic(name: str, config: dict, root: Path) -> ChestXrayDataset:
    folder = root / config["folder"]
    _require(folder / "test_preproc_filtered.csv", "test_preproc_filtered.csv", config)
    rows = [row for row in read_csv_rows(folder / "test_preproc_filtered.csv",
                                 ("path_preproc", "findings", "sex", "race", "age", config["finding"]))
            if row["findings"].strip()]
    return ChestXrayDataset(
        name, "test", root, [str(PurePosixPath(config["folder"], row["path_preproc"])) for row in rows],
        [int(float(row[config["finding"]] or 0) == 1) for row in rows], config["finding"],
        {"sex": np.array([row["sex"].lower() for row in rows]), "race": np.array([row["race"] for row in rows]),
         "age_group": np.array([age_group(float(row["age"])) for row in rows])},
        config["marker_attribute"])


LOADERS = {"cxr14-neatx": _cxr14, "mimic-cxr": _mimic}


def load_chest_xray(name: str, config: dict, split: str, root: str | os.PathLike) -> ChestXrayDataset:
    """The test split of a registered chest X-ray set under the data root (the paper evaluates test images only)."""
    if split not in config["splits"]:
        raise ValueError(f"unknown split {split!r} for {name}; known splits: {', '.join(config['splits'])} "
                         "(the paper evaluates the official test images only)")
    return LOADERS[name](name, config, Path(root))


def load_toy_medical(name: str, config: dict, split: str, root) -> medical.RadiographDataset:
    if split not in config["splits"]:
        raise KeyError(f"dataset {name!r} has splits {', '.join(config['splits'])}, not {split!r}")
    return medical.cohort_dataset(split, name=name, **config["splits"][split])


register_kind("chest-xray", load_chest_xray)
register_kind("toy-medical", load_toy_medical)
register_datasets(CHEST_XRAY_DATASETS)
register_datasets(TOY_MEDICAL_DATASETS)
