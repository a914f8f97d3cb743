"""Per-class visual descriptors as data (classify-by-description, NoLA's description classifier).

A descriptor source is a plain config in `DESCRIPTOR_SOURCES`:

    load_descriptors("toyworld")           # the toy world's own descriptions of every suite class (no files)
    load_descriptors("cbd-dtd")            # a paper's released JSON {class: [descriptor, ...]}

Released files are downloaded once into the cache (`$CLIPBOOK_CACHE/descriptors`), written
atomically, and never committed. Offline, a file that is not there yet is an error that says which
file, where it comes from and where to put it. Under the rehearsal profile (README, "Rehearsal") a source
that names the registry dataset it describes (`dataset`) is read from a stand-in in the same JSON format,
keyed by the generated dataset's class names (`clipbook.data.fake_layouts.write_descriptor_file`).
"""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from clipbook.cache import atomic_write_bytes, cache_dir, file_lock
from clipbook.models.loader import offline_mode
from clipbook.toyworld import world

# Classify-by-description (Menon & Vondrick, ICLR 2023): the GPT-3 descriptors released with the code,
# pinned to a commit so a download always gets the file the notebook was checked against.
CBD_REPOSITORY = "sachit-menon/classify_by_description_release"
CBD_COMMIT = "d1a3d8920af89bd0d6a692ed3afeb277df46e082"


def _cbd_source(file_stem: str, dataset: str | None) -> dict:
    file = f"descriptors/descriptors_{file_stem}.json"
    return {"kind": "json-url", "dataset": dataset, "url": f"https://raw.githubusercontent.com/{CBD_REPOSITORY}/{CBD_COMMIT}/{file}",
            "file": f"github.com/{CBD_REPOSITORY}/blob/{CBD_COMMIT}/{file}",
            "paper": "Menon & Vondrick, ICLR 2023 (notebook classify-by-description)"}


# NoLA (Imam et al. 2024): the LLM class descriptions shipped in descriptions/generic/, pinned likewise;
# keyed by clipbook's dataset names (the repository has no licence file: downloaded, never committed).
NOLA_REPOSITORY = "fazliimam/NoLA"
NOLA_COMMIT = "ffd99acda62911e98dbe17a982061dbc196c450b"
NOLA_FILES = {"caltech101": "Caltech101", "dtd": "DescribableTextures", "eurosat": "EuroSAT",
              "imagenet": "ImageNet", "oxford_flowers": "OxfordFlowers", "sun397": "SUN397", "ucf101": "UCF101"}


def _nola_source(file_stem: str, dataset: str) -> dict:
    file = f"descriptions/generic/{file_stem}.json"
    return {"kind": "json-url", "dataset": dataset, "url": f"https://raw.githubusercontent.com/{NOLA_REPOSITORY}/{NOLA_COMMIT}/{file}",
            "file": f"github.com/{NOLA_REPOSITORY}/blob/{NOLA_COMMIT}/{file}",
            "paper": "Imam et al. 2024, NoLA (notebook nola)"}


# the registry dataset each classify-by-description file describes (cub and places365 are not registered)
CBD_DATASETS = {"cub": None, "dtd": "dtd", "eurosat": "eurosat", "food101": "food101", "imagenet": "imagenet",
                "pets": "oxford_pets", "places365": None}

# kind "toyworld": the descriptions the renderer makes true; kind "json-url": a released JSON file.
# Paper notebooks register their sources here (url, the repository file it is, the paper it belongs to, and the
# registry dataset whose classes it describes, which the rehearsal's stand-in file is generated for).
DESCRIPTOR_SOURCES: dict[str, dict] = {
    "toyworld": {"kind": "toyworld"},
    **{f"cbd-{stem}": _cbd_source(stem, dataset) for stem, dataset in CBD_DATASETS.items()},
    **{f"nola-{dataset}": _nola_source(stem, dataset) for dataset, stem in NOLA_FILES.items()},
}


class UnknownDescriptorSourceError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class MissingDescriptorsError(FileNotFoundError):
    pass


def register_descriptor_source(name: str, **config) -> None:
    """Add a source, e.g. `register_descriptor_source("x", kind="json-url", url=..., paper=..., dataset="dtd")`
    (`dataset`: the registry dataset whose classes the file describes, so the rehearsal can stand in for it)."""
    if config.get("kind") not in ("toyworld", "json-url"):
        raise ValueError(f"descriptor source {name!r}: kind must be 'toyworld' or 'json-url', got {config.get('kind')!r}")
    if config["kind"] == "json-url" and not str(config.get("url", "")).startswith("https://"):
        raise ValueError(f"descriptor source {name!r}: a json-url source needs an https url")
    DESCRIPTOR_SOURCES[name] = dict(config)


def descriptor_file(name: str) -> Path:
    """Where a downloaded source lives in the cache (named by source, so users can place it by hand)."""
    return cache_dir("descriptors") / f"{name}.json"


def _rehearsal_stand_in(name: str, config: dict) -> Path:
    """The rehearsal's file for a released source: generated for the dataset's generated classes."""
    from clipbook.data import fake_layouts

    if not config.get("dataset"):
        raise MissingDescriptorsError(
            f"descriptor source {name!r} names no registry dataset ('dataset'), so the rehearsal profile cannot "
            f"generate a stand-in for {config.get('file', config['url'])}; register it with dataset=<registry name>")
    return fake_layouts.ensure_descriptor_file(name, config["dataset"], fake_layouts.rehearsal_data_root())


def _download(name: str, config: dict) -> Path:
    from clipbook.models.loader import rehearsing

    if rehearsing():  # checked before the cache: a real file there would not match the generated classes
        return _rehearsal_stand_in(name, config)
    path = descriptor_file(name)
    with file_lock(path):
        if path.exists():
            return path
        if offline_mode():
            raise MissingDescriptorsError(
                f"descriptor file for {name!r} is not in the cache and the offline profile does not download.\n"
                f"  from: {config['url']}\n"
                f"  put it at: {path}\n"
                f"  how: download that file on a machine with network and copy it there, or run this notebook "
                f"once with network (profile 'paper' downloads it)")
        try:
            with urllib.request.urlopen(config["url"], timeout=60) as response:
                data = response.read()
        except OSError as err:
            raise MissingDescriptorsError(
                f"could not download the descriptor file for {name!r} from {config['url']} ({err}); "
                f"download it by hand and put it at {path}") from err
        json.loads(data)  # refuse to cache a page that is not JSON (e.g. an error page)
        atomic_write_bytes(data, path)
    return path


def load_descriptors(source: str) -> dict[str, list[str]]:
    """Descriptors per class name, in the source's class order.

    Args:
        source: a name in `DESCRIPTOR_SOURCES`.

    Returns:
        `{classname: [descriptor, ...]}`.
    """
    if source not in DESCRIPTOR_SOURCES:
        raise UnknownDescriptorSourceError(
            f"unknown descriptor source {source!r}; known: {', '.join(sorted(DESCRIPTOR_SOURCES))}")
    config = DESCRIPTOR_SOURCES[source]
    if config["kind"] == "toyworld":  # every family's classes, in world.CLASSES order (names are unique)
        return {name: list(spec["descriptions"]) for name, spec in world.CLASSES.items()}
    path = _download(source, config)
    try:
        descriptors = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise MissingDescriptorsError(f"descriptor file {path} is unreadable ({err}); delete it to download again") from err
    if not isinstance(descriptors, dict) or not all(isinstance(v, list) for v in descriptors.values()):
        raise MissingDescriptorsError(f"descriptor file {path} is not a {{class: [descriptors]}} JSON object")
    return descriptors


def descriptors_for(classnames: list[str], descriptors: dict[str, list[str]]) -> list[list[str]]:
    """The descriptor lists in `classnames` order; a class without descriptors is an error naming it."""
    missing = [c for c in classnames if c not in descriptors]
    if missing:
        raise KeyError(f"no descriptors for classes {missing[:5]}{'…' if len(missing) > 5 else ''}; "
                       f"the source has {len(descriptors)} classes, e.g. {list(descriptors)[:3]}")
    return [list(descriptors[c]) for c in classnames]
