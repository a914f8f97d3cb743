"""Provenance taken when a notebook runs, not when the report is written.

The loader and the dataset registry note every model and dataset a notebook loads; `collect` adds the
commit (and whether the tree was dirty), a hash of the library modules the notebook imported, all resolved
parameters, the device, package versions, seeds and wall time.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ("torch", "torchvision", "open_clip_torch", "numpy", "pandas", "scikit-learn", "scipy", "timm",
            "transformers")

_models: dict[str, dict] = {}
_datasets: dict[str, object] = {}


def note_model(identity: dict) -> None:
    """Called by the loader for every model it returns."""
    _models[str(sorted(identity.items()))] = dict(identity)


def note_dataset(name: str, split: str, dataset) -> None:
    """Called by the registry for every dataset it returns; fingerprinted when the record is written."""
    _datasets[f"{name}/{split}"] = dataset


def reset() -> None:
    _models.clear()
    _datasets.clear()


def git_state(directory: Path | None = None) -> dict:
    directory = directory or Path(__file__).resolve().parent

    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=directory,
                                  timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "unknown", "dirty": None if dirty is None else bool(dirty)}


def library_modules() -> list[str]:
    """The clipbook modules imported in this process."""
    return sorted(name for name, module in list(sys.modules.items())
                  if name.split(".")[0] == "clipbook" and getattr(module, "__file__", None))


def library_hash(modules: list[str] | None = None) -> str:
    """sha256 over the source of the given (default: imported) clipbook modules."""
    digest = hashlib.sha256()
    for name in modules if modules is not None else library_modules():
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            digest.update(name.encode() + Path(path).read_bytes())
    return digest.hexdigest()[:20]


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def device_name(device: str) -> str:
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))}, CUDA {torch.version.cuda})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _fingerprint(dataset) -> dict | str:
    try:
        return dataset.fingerprint()
    except Exception as err:  # a provenance field must never lose the run's numbers
        return f"unavailable ({type(err).__name__}: {err})"


def collect(*, parameters: dict, device: str, started: float) -> dict:
    """Everything that identifies how this run's numbers were obtained."""
    return {
        "git": git_state(),
        "library_hash": library_hash(),
        "parameters": parameters,
        "seeds": parameters.get("seeds"),
        "models": list(_models.values()),
        "datasets": {key: _fingerprint(dataset) for key, dataset in sorted(_datasets.items())},
        "device": device_name(device),
        "packages": package_versions(),
        "wall_time_s": round(time.time() - started, 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def describe(provenance: dict) -> dict[str, str]:
    """A record's provenance as short labelled lines for a reader (the index's cards, a page's header band):
    commit, library hash, models, data, device, seeds, packages and when it finished; absent fields are left out.

    A dataset is identified by its name, its splits and a digest of their fingerprints (two runs on the same data
    show the same digest; the full fingerprints are in results.json)."""
    lines = {}
    git = provenance.get("git") or {}
    if git.get("commit"):
        lines["commit"] = git["commit"][:10] + (" (uncommitted changes)" if git.get("dirty") else "")
    if provenance.get("library_hash"):
        lines["library"] = provenance["library_hash"]
    models = provenance.get("models") or []
    if models:
        lines["models"] = "; ".join(
            f"{model.get('name', '?')} ({', '.join(str(value) for key, value in model.items() if key != 'name')})"
            if len(model) > 1 else str(model.get("name", "?")) for model in models)
    by_dataset: dict[str, dict] = {}
    for key, fingerprint in sorted((provenance.get("datasets") or {}).items()):
        name, _, split = key.partition("/")
        by_dataset.setdefault(name, {})[split] = fingerprint
    if by_dataset:
        lines["data"] = "; ".join(f"{name} ({', '.join(splits)}) #{_digest(splits)}"
                                  for name, splits in by_dataset.items())
    for key in ("device", "seeds"):
        if provenance.get(key) not in (None, "", []):
            lines[key] = str(provenance[key])
    if provenance.get("packages"):
        lines["packages"] = ", ".join(f"{name} {version}" for name, version in provenance["packages"].items())
    if provenance.get("finished_at"):
        lines["finished"] = provenance["finished_at"]
    return lines


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:8]
