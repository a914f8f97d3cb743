"""The toy suite's datasets (kind "toy"; rendered on access, no files): `toyworld.suite.SUITE` and the shifted
domains of its generic dataset (`suite.SHIFTS`)."""
from __future__ import annotations

from pathlib import Path

from clipbook.data.registry import register_datasets, register_kind
from clipbook.toyworld import splits as toy_splits
from clipbook.toyworld import suite
from clipbook.toyworld.text_to_image import SceneDataset

_GENERIC = suite.SUITE["toy"]
_SHIFT_SPLITS = {
    "toy-sketch": {"train": "sketch-train", "val": "sketch-val", "test": "sketch-test"},
    "toy-noise": {"train": "noise-train", "val": "noise-val", "test": "noise-test"},
    "toy-v2": {"test": "v2-test"}, "toy-a": {"test": "a-test"}, "toy-r": {"test": "r-test"},
}

# "splits" maps the standard train/val/test names onto toy-world splits; through "toy", any other split of the
# generic family is reachable by its own name (spurious-train, background-uniform-test, ...).
TOY_DATASETS: dict[str, dict] = {
    "toy": {"kind": "toy", "template": _GENERIC["template"], "title": _GENERIC["title"],
            "counterpart": _GENERIC["counterpart"], "splits": {"train": "train", "val": "val", "test": "test"}},
    **{name: {"kind": "toy", "template": spec["template"], "title": spec["title"], "counterpart": spec["counterpart"],
              "splits": {split: f"{spec['family']}-{split}" for split in ("train", "val", "test")}}
       for name, spec in suite.SUITE.items() if name != "toy"},
    **{name: {"kind": "toy", "template": _GENERIC["template"], "title": spec["title"],
              "counterpart": spec["counterpart"], "shift_of": "toy", "splits": _SHIFT_SPLITS[name]}
       for name, spec in suite.SHIFTS.items()},
}


class ToyDataset(SceneDataset):
    """A registered toy-world split as an image dataset (images rendered on access, deterministic)."""

    def __init__(self, split: str, name: str = "toy"):
        super().__init__(toy_splits.scenes(split), name=name, split=split,
                         family=toy_splits.split_config(split).get("family", "objects"))
        self.config = toy_splits.split_config(split)
        self.templates = [TOY_DATASETS[name]["template"]] if name in TOY_DATASETS else ["a photo of a {}."]

    def fingerprint(self) -> dict:  # the split's recipe: cheaper than hashing every scene, and as unique
        return {"dataset": "toy", **toy_splits.fingerprint(self.split)}


def load_toy_dataset(name: str, config: dict, split: str, root: Path) -> ToyDataset:
    if name != "toy" and split not in config["splits"]:
        raise KeyError(f"dataset {name!r} has splits {', '.join(config['splits'])}, not {split!r}")
    return ToyDataset(config["splits"].get(split, split), name=name)


register_kind("toy", load_toy_dataset)
register_datasets(TOY_DATASETS)
