"""The dataset registry: plain configs, one loader per kind (timm-style; depends on nothing else in data/).

    load_dataset("toy", "test")            # a toy-world split (no files)
    load_dataset("eurosat", "test")        # a CoOp dataset from $CLIPBOOK_DATA/eurosat + split_zhou_EuroSAT.json

Each module of `clipbook.data` registers its kind's loader (`register_kind`) and its datasets' configs
(`register_datasets`) when imported, and `import clipbook.data` imports them all: after it, `DATASETS` is
complete. A new kind of data (masks, caption sets, retrieval pairs) is a new module doing the same, with
no edit here. Every dataset yields (PIL image, label) and exposes `classnames`, `labels`, `templates`
and `fingerprint()` (what identifies its content, for feature-cache keys).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

# name -> config; config["kind"] picks the loader
DATASETS: dict[str, dict] = {}
# kind -> loader(name, config, split, data_root) -> dataset; loaders check the split themselves
KINDS: dict[str, Callable] = {}


class UnknownDatasetError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class MissingDatasetError(FileNotFoundError):
    pass


def register_kind(kind: str, loader: Callable) -> None:
    if kind in KINDS and KINDS[kind] is not loader:
        raise ValueError(f"dataset kind {kind!r} is already registered by {KINDS[kind].__module__}")
    KINDS[kind] = loader


def register_datasets(configs: dict[str, dict]) -> None:
    for name, config in configs.items():
        if config.get("kind") not in KINDS:
            raise ValueError(f"dataset {name!r}: register its kind {config.get('kind')!r} first")
        if name in DATASETS and DATASETS[name] != config:
            raise ValueError(f"dataset {name!r} is registered twice with different configs")
        DATASETS[name] = config


def data_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root or os.environ.get("CLIPBOOK_DATA", Path.home() / "data")).expanduser()


def known_datasets() -> list[str]:
    return sorted(DATASETS)


def load_dataset(name: str, split: str, *, root: str | os.PathLike | None = None):
    """Return a dataset by registry name and split; unknown names and splits fail at once."""
    from clipbook.report import provenance

    if name not in DATASETS:
        raise UnknownDatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(known_datasets())}")
    config = DATASETS[name]
    dataset = KINDS[config["kind"]](name, config, split, data_root(root))
    provenance.note_dataset(name, split, dataset)
    return dataset
