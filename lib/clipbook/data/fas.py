"""Face anti-spoofing benchmarks (kind "fas") in the layout of Hyp-OC's official code (Kartik-3004/hyp-oc).

All five are restricted: each is released under its owners' licence agreement, on request. Put the frames under
`$CLIPBOOK_DATA/hyp-oc/datasets/` as the repo's README arranges them, and the split files of the repo's `data/`
folder (MIT; `git clone https://github.com/Kartik-3004/hyp-oc` and copy `data/`) under `$CLIPBOOK_DATA/hyp-oc/data/`:

    hyp-oc/datasets/ReplayAttack/{train,test,devel}_frames   hyp-oc/data/ReplayAttack/{train,test,eval}.csv
    hyp-oc/datasets/MSU_MFSD/{train,test}                    hyp-oc/data/MSU_MFSD/{train,test}.csv
    hyp-oc/datasets/CASIA_MFSD/{train,test}                  hyp-oc/data/CASIA_MFSD/{train,test}.csv
    hyp-oc/datasets/ROSEYoutu/client/rgb/{adaptation,test}   hyp-oc/data/ROSEYoutu/{train,test}.csv
    hyp-oc/datasets/OULU_NPU/{Train,Dev,Test}_frames         hyp-oc/data/OULU_NPU/Protocols/Protocol_1/{Train,Dev,Test}.txt

A CSV has a header `path,label` and one frame per row, its path relative to `datasets/`, label 0 live / 1 spoof
(`dataloader.py`). OULU-NPU's protocol files list `+1,<video>` (live) or `-1,<video>` (attack) and every frame
file in the video's folder is one sample; its training split keeps the live videos only (`dataloader.OULU_NPU`).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from clipbook.data.real import ImageListDataset
from clipbook.data.registry import MissingDatasetError, register_datasets, register_kind

FOLDER = "hyp-oc"
LABELS = ["live", "spoof"]


def _config(title: str, folder: str, splits: dict[str, str], source: str) -> dict:
    return {"kind": "fas", "title": title, "folder": folder, "splits": splits, "source": source,
            "template": "a photo of a {} face."}


FAS_DATASETS: dict[str, dict] = {
    "rose_youtu": _config("ROSE-Youtu", "ROSEYoutu", {"train": "train.csv", "val": "test.csv", "test": "test.csv"},
                          "https://rose1.ntu.edu.sg/dataset/faceLivenessDetection/ (licence agreement, on request)"),
    "msu_mfsd": _config("MSU-MFSD", "MSU_MFSD", {"train": "train.csv", "val": "test.csv", "test": "test.csv"},
                        "https://sites.google.com/site/huhanhomepage/datasetcode (licence agreement, on request)"),
    "casia_mfsd": _config("CASIA-MFSD", "CASIA_MFSD", {"train": "train.csv", "val": "test.csv", "test": "test.csv"},
                          "CASIA (Zhang et al., ICB 2012; https://ieeexplore.ieee.org/document/6199754): request "
                          "from the authors"),
    "replay_attack": _config("Idiap Replay-Attack", "ReplayAttack",
                             {"train": "train.csv", "val": "eval.csv", "test": "test.csv"},
                             "https://www.idiap.ch/en/scientific-research/data/replayattack (Idiap EULA, on request)"),
    "oulu_npu": _config("OULU-NPU (protocol 1)", "OULU_NPU",
                        {"train": "Protocols/Protocol_1/Train.txt", "val": "Protocols/Protocol_1/Dev.txt",
                         "test": "Protocols/Protocol_1/Test.txt"},
                        "https://sites.google.com/site/oulunpudatabase/ (licence agreement, on request)"),
}
_OULU_FRAMES = {"train": "Train_frames", "val": "Dev_frames", "test": "Test_frames"}


def _missing(name: str, config: dict, path: Path) -> MissingDatasetError:
    return MissingDatasetError(
        f"{config['title']} ({name}) not found: {path} is missing. The dataset is restricted: request it from "
        f"{config['source']}, put its frames under $CLIPBOOK_DATA/{FOLDER}/datasets/{config['folder']} and the split "
        f"files of github.com/Kartik-3004/hyp-oc data/{config['folder']} under $CLIPBOOK_DATA/{FOLDER}/data/ "
        "(see clipbook/data/fas.py)")


def _read_csv(path: Path) -> tuple[list[str], list[int]]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    body = rows[1:] if rows and rows[0][:2] == ["path", "label"] else rows
    return [row[0] for row in body], [int(row[1]) for row in body]


def _read_oulu(protocol: Path, frames: Path, split: str, relative_to: Path) -> tuple[list[str], list[int]]:
    paths, labels = [], []
    with open(protocol) as handle:
        for line in handle:
            if not line.strip():
                continue
            sign, video = line.strip().split(",")
            if split == "train" and sign != "+1":
                continue  # one-class training: live videos only
            for frame in sorted(os.listdir(frames / video)):
                paths.append(str((frames / video / frame).relative_to(relative_to)))
                labels.append(0 if sign == "+1" else 1)
    return paths, labels


def load_fas_dataset(name: str, config: dict, split: str, root: Path) -> ImageListDataset:
    if split not in config["splits"]:
        raise KeyError(f"dataset {name!r} has splits {', '.join(config['splits'])}, not {split!r}")
    images, splits = root / FOLDER / "datasets", root / FOLDER / "data" / config["folder"]
    split_file = splits / config["splits"][split]
    for path in (images / config["folder"], split_file):
        if not path.exists():
            raise _missing(name, config, path)
    if config["folder"] == "OULU_NPU":
        relative_paths, labels = _read_oulu(split_file, images / "OULU_NPU" / _OULU_FRAMES[split], split, images)
    else:
        relative_paths, labels = _read_csv(split_file)
    return ImageListDataset(name, split, images, relative_paths, labels, LABELS, config["template"])


register_kind("fas", load_fas_dataset)
register_datasets(FAS_DATASETS)
