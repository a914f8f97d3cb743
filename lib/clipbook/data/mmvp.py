"""MMVP-VLM (Tong et al., "Eyes Wide Shut?", CVPR 2024): 150 CLIP-blind image pairs, each with the two statements
that tell the images apart, in 9 visual-pattern categories (15 pairs each in the released evaluation).

Layout, as `scripts/evaluate_vlm.py` of tsb0601/MMVP reads it (the HF dataset `MMVP/MMVP_VLM`):

    $CLIPBOOK_DATA/mmvp_vlm/Questions.csv                     # header, then rows: question id, type, statement
    $CLIPBOOK_DATA/mmvp_vlm/MLLM_VLM Images/<type>/<id>.jpg   # one image per question id

Consecutive rows are a pair (ids 2k+1, 2k+2, the first statement describing the first image); the prompt is
"a photo of " + statement; a pair's category is the block of 15 pairs it sits in, in the script's category order.
Score the pairs with `clipbook.evaluation.pairs`.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch

from clipbook.data.registry import MissingDatasetError, register_datasets, register_kind

# evaluate_vlm.py's category order; pair p belongs to CATEGORIES[p // PAIRS_PER_CATEGORY]
CATEGORIES = ("Orientation and Direction", "Presence of Specific Features", "State and Condition",
              "Quantity and Count", "Positional and Relational Context", "Color and Appearance",
              "Structural Characteristics", "Texts", "Viewpoint and Perspective")
PAIRS_PER_CATEGORY = 15
IMAGE_DIR = "MLLM_VLM Images"
PROMPT = "a photo of "

MMVP_DATASETS = {"mmvp_vlm": {"kind": "mmvp-pairs", "folder": "mmvp_vlm", "splits": ["test"],
                              "source": "https://huggingface.co/datasets/MMVP/MMVP_VLM"}}


class PairDataset(torch.utils.data.Dataset):
    """MMVP-VLM's images (both of every pair, in order) with its pairs, statements and categories."""

    def __init__(self, root: Path, name: str = "mmvp_vlm"):
        self.root, self.name, self.split = root, name, "test"
        rows = _read_questions(root / "Questions.csv")
        if len(rows) % 2:
            raise ValueError(f"{root / 'Questions.csv'} has an odd number of questions ({len(rows)}): rows pair up")
        self.pairs = []
        for first, second in zip(rows[::2], rows[1::2]):
            if int(first[0]) % 2 != 1:  # evaluate_vlm.py: the odd id's statement describes the first image
                raise ValueError(f"MMVP pair ({first[0]}, {second[0]}) does not start at an odd question id")
            self.pairs.append({"ids": (int(first[0]), int(second[0])), "type": first[1],
                               "statements": (first[2], second[2])})
        self.paths = [root / IMAGE_DIR / pair["type"] / f"{qid}.jpg" for pair in self.pairs for qid in pair["ids"]]
        missing = [p for p in self.paths if not p.exists()]
        if missing:
            raise MissingDatasetError(f"MMVP-VLM image not found: {missing[0]} ({len(missing)} missing)\n"
                                      f"{_GUIDANCE}")
        self.labels = np.arange(len(self.paths))
        self.classnames = [f"image {i}" for i in range(len(self.paths))]
        self.templates = [PROMPT + "{}"]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from PIL import Image

        with Image.open(self.paths[index]) as image:
            return image.convert("RGB"), int(self.labels[index])

    def statements(self) -> tuple[list[str], list[str]]:
        """The prompts of every pair's first and second statement ("a photo of " + statement)."""
        return ([PROMPT + p["statements"][0] for p in self.pairs], [PROMPT + p["statements"][1] for p in self.pairs])

    def categories(self) -> np.ndarray:
        """Each pair's category: its block of 15 pairs, as evaluate_vlm.py counts (extra pairs: "other")."""
        return np.array([CATEGORIES[i // PAIRS_PER_CATEGORY] if i // PAIRS_PER_CATEGORY < len(CATEGORIES) else "other"
                         for i in range(len(self.pairs))])

    def image_features(self, loaded) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw image features of every pair's first and second image under `loaded`'s preprocessing."""
        device = next(loaded.model.parameters()).device
        with torch.no_grad():
            features = torch.cat([loaded.model.encode_image(torch.stack(
                [loaded.preprocess(self[i][0]) for i in range(start, min(start + 64, len(self)))]).to(device))
                .float().cpu() for start in range(0, len(self), 64)])
        return features[0::2], features[1::2]

    def fingerprint(self) -> dict:
        stat = (self.root / "Questions.csv").stat()
        return {"dataset": self.name, "questions": len(self.pairs) * 2, "csv_size": stat.st_size}


_GUIDANCE = ("Download the HF dataset MMVP/MMVP_VLM (https://huggingface.co/datasets/MMVP/MMVP_VLM) into "
             "$CLIPBOOK_DATA/mmvp_vlm so that it holds Questions.csv and 'MLLM_VLM Images/<type>/<id>.jpg'.")


def _read_questions(path: Path) -> list[list[str]]:
    if not path.exists():
        raise MissingDatasetError(f"MMVP-VLM questions not found: {path}\n{_GUIDANCE}")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader, None)  # header
        rows = [row for row in reader if row]
    bad = [row for row in rows if len(row) != 3]
    if bad:
        raise ValueError(f"{path}: expected rows (question id, type, statement), got {bad[0]!r}")
    return rows


def write_fake_layout(name: str, config: dict, root: Path, size) -> None:
    """The rehearsal's stand-in in the real layout: 2 × images_per_class['test'] pairs of noise images, the pair's
    type folder and statements as in Questions.csv (ids 1, 2, 3, ...)."""
    from clipbook.data.fake_layouts import write_image

    folder = root / config["folder"]
    lines = [["Question ID", "Type", "Statement"]]
    for p in range(2 * int(size.images_per_class.get("test", 1))):
        kind = CATEGORIES[p % len(CATEGORIES)]
        for k, statement in enumerate(("the dog is facing left", "the dog is facing right")):
            qid = 2 * p + k + 1
            write_image(folder / IMAGE_DIR / kind / f"{qid}.jpg", f"{name}/{qid}")
            lines.append([str(qid), kind, f"{statement} ({p})"])
    with open(folder / "Questions.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(lines)


def load_mmvp_dataset(name: str, config: dict, split: str, root: str | os.PathLike) -> PairDataset:
    if split not in config["splits"]:
        raise KeyError(f"dataset {name!r} has splits {', '.join(config['splits'])}, not {split!r}")
    return PairDataset(Path(root) / config["folder"], name=name)


register_kind("mmvp-pairs", load_mmvp_dataset)
register_datasets(MMVP_DATASETS)
