"""MMVP-VLM (Tong et al., "Eyes Wide Shut?", CVPR 2024), in the layout of its release (HF `MMVP/MMVP_VLM`).

Kind "mmvp-vlm": `<data root>/MMVP_VLM/Questions.csv` (a header, then rows `Question ID, Type, Statement`; two
consecutive rows make a pair) and `<data root>/MMVP_VLM/MLLM_VLM Images/<Type>/<Question ID>.jpg`. This is how
`scripts/evaluate_vlm.py` of tsb0601/MMVP reads it: both images of a pair from the first row's Type folder, the
text "a photo of " + Statement, and the odd question id's statement belongs to the pair's first image. 150 pairs,
15 per visual pattern (9 patterns). The dataset's images run pair by pair (image 2k and 2k+1 are pair k's);
`labels` index the pattern of each image's pair.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from clipbook.data.real import ImageListDataset, read_csv_rows
from clipbook.data.registry import MissingDatasetError, register_datasets, register_kind

# evaluate_vlm.py's categories, in the order of the benchmark's pairs (15 pairs each)
PATTERNS = ["Orientation and Direction", "Presence of Specific Features", "State and Condition",
            "Quantity and Count", "Positional and Relational Context", "Color and Appearance",
            "Structural Characteristics", "Texts", "Viewpoint and Perspective"]
IMAGE_DIR = "MLLM_VLM Images"
STATEMENT_PREFIX = "a photo of "  # evaluate_vlm.py: text = 'a photo of ' + statement
COLUMNS = ("Question ID", "Type", "Statement")
SOURCE = ("MMVP-VLM from https://huggingface.co/datasets/MMVP/MMVP_VLM (Questions.csv and the 'MLLM_VLM Images' "
          "folder; `huggingface-cli download MMVP/MMVP_VLM --repo-type dataset --local-dir <data root>/MMVP_VLM`)")
MMVP_DATASETS: dict[str, dict] = {
    "mmvp_vlm": {"kind": "mmvp-vlm", "title": "MMVP-VLM", "folder": "MMVP_VLM", "template": "a photo of {}",
                 "splits": {"test": "test"}},
}


class MMVPDataset(ImageListDataset):
    """MMVP-VLM's images pair by pair, with each image's statement (`statements`)."""

    def __init__(self, *args, statements, **kwargs):
        super().__init__(*args, **kwargs)
        self.statements = list(statements)

    def statement_pairs(self) -> tuple[list[str], list[str]]:
        """The texts of each pair's first and second image, as evaluate_vlm.py encodes them."""
        texts = [STATEMENT_PREFIX + s for s in self.statements]
        return texts[0::2], texts[1::2]

    def pair_categories(self) -> list[str]:
        return [self.classnames[label] for label in self.labels[0::2]]

    def fingerprint(self) -> dict:
        digest = hashlib.sha256("\n".join(self.statements).encode()).hexdigest()
        return {**super().fingerprint(), "statements_sha256": digest}


def load_mmvp(name: str, config: dict, split: str, root: str | os.PathLike) -> MMVPDataset:
    if split not in config["splits"]:
        raise KeyError(f"dataset {name!r} has splits {', '.join(config['splits'])}, not {split!r}")
    root = Path(root)
    folder = root / config["folder"]
    questions = folder / "Questions.csv"
    if not questions.is_file():
        raise MissingDatasetError(f"{name} not found: {questions} (with '{IMAGE_DIR}/<Type>/<id>.jpg' beside it); "
                                  f"get {SOURCE}, or set $CLIPBOOK_DATA")
    rows = read_csv_rows(questions, COLUMNS)
    if not rows or len(rows) % 2:
        raise ValueError(f"{questions}: {len(rows)} statements; MMVP-VLM pairs consecutive rows, so it needs an "
                         "even, non-zero number")
    paths, labels, statements = [], [], []
    for first, second in zip(rows[0::2], rows[1::2]):
        ids = int(first["Question ID"]), int(second["Question ID"])
        pattern = first["Type"]
        if ids[0] % 2 != 1 or ids[1] != ids[0] + 1 or pattern not in PATTERNS:
            raise ValueError(f"{questions}: rows {ids} of type {pattern!r} are not a pair (odd id, then the next) of "
                             f"a known pattern ({', '.join(PATTERNS)})")
        for qid, row in zip(ids, (first, second)):
            relative = Path(config["folder"], IMAGE_DIR, pattern, f"{qid}.jpg")
            if not (root / relative).is_file():
                raise MissingDatasetError(f"{name}: image {root / relative} is missing ({SOURCE})")
            paths.append(str(relative))
            labels.append(PATTERNS.index(pattern))
            statements.append(row["Statement"])
    return MMVPDataset(name, split, root, paths, labels, PATTERNS, config["template"], statements=statements)


def write_fake_layout(name: str, config: dict, root: Path, size) -> None:
    """The rehearsal's stand-in: one pair per pattern (noise images), statements naming the pattern."""
    import csv

    from clipbook.data.fake_layouts import write_image

    folder = root / config["folder"]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "Questions.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        for index, pattern in enumerate(PATTERNS):
            for qid, which in ((2 * index + 1, "one"), (2 * index + 2, "the other")):
                writer.writerow([qid, pattern, f"{which} way of {pattern.lower()}"])
                relative = Path(config["folder"], IMAGE_DIR, pattern, f"{qid}.jpg")
                write_image(root / relative, f"{name}/{relative}")


register_kind("mmvp-vlm", load_mmvp)
register_datasets(MMVP_DATASETS)
