"""Precomputed feature arrays shipped by a paper's repository (kind "feature-arrays").

Some papers release features rather than images: DeltaEdit (Yueming6568/DeltaEdit, snapshot dd6c27c) ships the
OpenAI ViT-B/32 CLIP features behind its DeltaSpace t-SNE figure, 1500 image-caption pairs each of CelebA and
COCO val, as four (1500, 512) float32 arrays per set in its repository's folder layout:

    $CLIPBOOK_DATA/DeltaEdit/tSNE/celeba/cspace_celeba_{i,t,deltai,deltat}.npy
    $CLIPBOOK_DATA/DeltaEdit/tSNE/cocoval/cspace_cocoval_{i,t,deltai,deltat}.npy

(`git clone https://github.com/Yueming6568/DeltaEdit $CLIPBOOK_DATA/DeltaEdit` puts them there; the repository
has no licence file, so the arrays are read in place and never copied into this project.) `load_dataset(name,
"test")` returns a `FeatureArrays` with one attribute per array (`.i`, `.t`, `.deltai`, `.deltat`), checked for
equal row counts; a missing file fails at once with a one-line error naming it and where it comes from.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipbook.data.registry import MissingDatasetError, register_datasets, register_kind

DELTAEDIT_SOURCE = ("the DeltaEdit repository's tSNE/ folder: git clone https://github.com/Yueming6568/DeltaEdit "
                    "$CLIPBOOK_DATA/DeltaEdit (8 arrays of 3 MB)")
FEATURE_ARRAY_DATASETS: dict[str, dict] = {
    f"deltaedit-{subset}": {
        "kind": "feature-arrays", "title": f"DeltaEdit's shipped CLIP ViT-B/32 features ({title})",
        # one folder per set (a fake layout replaces its dataset's folder), inside the repository's own tree
        "folder": f"DeltaEdit/tSNE/{subset}", "files": {key: f"cspace_{subset}_{key}.npy"
                                                        for key in ("i", "t", "deltai", "deltat")},
        "dim": 512, "splits": ["test"], "source": DELTAEDIT_SOURCE}
    for subset, title in (("celeba", "CelebA"), ("cocoval", "COCO val"))
}


@dataclass
class FeatureArrays:
    """Named arrays of one feature set, row k of every array belonging to pair k."""
    name: str
    split: str
    arrays: dict[str, np.ndarray]
    files: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, key: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if key in arrays:
            return arrays[key]
        raise AttributeError(f"{self.__dict__.get('name', 'feature set')!r} has no array {key!r}; "
                             f"it has {', '.join(arrays)}")

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def fingerprint(self) -> dict:
        return {"dataset": self.name, "split": self.split, "sha256": self.files}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_feature_arrays(name: str, config: dict, split: str, root: Path) -> FeatureArrays:
    if split != "test":
        raise KeyError(f"dataset {name!r} has one split, 'test', not {split!r}")
    folder = root / config["folder"]
    arrays, hashes = {}, {}
    for key, relative in config["files"].items():
        path = folder / relative
        if not path.is_file():
            raise MissingDatasetError(f"{name} ({config['title']}) not found: {path}; get it from {config['source']}")
        try:
            array = np.load(path)
        except ValueError as err:  # a Git LFS pointer or a truncated download
            raise MissingDatasetError(f"{name}: {path} is not a .npy array ({err}); get it from {config['source']}")
        if array.ndim != 2 or array.shape[1] != config["dim"]:
            raise MissingDatasetError(f"{name}: {path} has shape {array.shape}, expected (N, {config['dim']})")
        arrays[key], hashes[key] = array.astype(np.float32), _sha256(path)
    counts = {key: len(a) for key, a in arrays.items()}
    if len(set(counts.values())) != 1:
        raise MissingDatasetError(f"{name}: the arrays have different row counts {counts}")
    return FeatureArrays(name=name, split=split, arrays=arrays, files=hashes)


def write_fake_layout(name: str, config: dict, root: Path, size) -> None:
    """Random unit-norm rows in the real file layout (rehearsal), a few hundred pairs."""
    rng = np.random.default_rng(sum(map(ord, name)))  # fixed per dataset
    pairs = 200
    for key, relative in config["files"].items():
        path = root / config["folder"] / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = rng.standard_normal((pairs, config["dim"])).astype(np.float32)
        np.save(path, rows / np.linalg.norm(rows, axis=1, keepdims=True))


register_kind("feature-arrays", load_feature_arrays)
register_datasets(FEATURE_ARRAY_DATASETS)
