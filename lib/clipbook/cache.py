"""Content-addressed, atomically written, lock-protected on-disk cache.

Keys are hashes of what determines a result (model, data, transform, code version), never of
paths or times, so a cache entry is valid wherever it is read. Writes go to a temporary file in the
same folder and are renamed into place, so a crash or a concurrent reader never sees half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import torch

DEFAULT_CACHE = Path.home() / ".cache" / "clipbook"


class CorruptCacheError(RuntimeError):
    """A cache or checkpoint file exists but cannot be read back."""


def cache_root() -> Path:
    return Path(os.environ.get("CLIPBOOK_CACHE", DEFAULT_CACHE)).expanduser()


def cache_dir(kind: str) -> Path:
    path = cache_root() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_key(spec: Any) -> str:
    """A stable short hash of a JSON-able spec (dict order does not matter)."""
    blob = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@contextmanager
def file_lock(path: Path | str, timeout: float = 3600):
    from filelock import FileLock

    with FileLock(str(path) + ".lock", timeout=timeout):
        yield


def atomic_write_bytes(data: bytes, path: Path | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; cache entries are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: Path | str) -> None:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def _numpy_globals() -> list:
    """What a pickled numpy array or scalar needs besides weights_only's own allowlist: results cached as numpy
    (an accuracy from sklearn, a label array) load back instead of failing as "corrupt" and being recomputed on
    every run."""
    import numpy as np

    dtypes = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGUSM"] + [type(np.dtype("m8")), type(np.dtype("O"))]
    return [np._core.multiarray._reconstruct, np._core.multiarray.scalar, np.ndarray, np.dtype, *dtypes]


def load_torch(path: Path | str) -> Any:
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CorruptCacheError(
            f"cannot read {path}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. "
            "The file is truncated or not a torch file; delete it (or run `invoke clean-cache`) to rebuild it."
        ) from err


def quarantine(path: Path | str) -> Path:
    """Move an unreadable cache file aside (kept for inspection) and return where it went."""
    path = Path(path)
    target = path.with_name(path.name + ".corrupt")
    os.replace(path, target)
    return target


def entry_path(kind: str, spec: dict, *, name: str = "") -> Path:
    """Where `cached` keeps the result for `spec` (whether or not it is there yet): a caller that fans the missing
    entries out to other processes asks which ones exist first."""
    return cache_dir(kind) / f"{name + '-' if name else ''}{content_key(spec)}.pt"


def cached(kind: str, spec: dict, compute: Callable[[], Any], *, name: str = "") -> Any:
    """Return the cached result for `spec`, computing and storing it on a miss.

    A corrupt entry is moved aside with a warning naming it, then recomputed: cached results are
    always derivable, so nothing is lost and the run goes on.
    """
    path = entry_path(kind, spec, name=name)
    if path.exists():  # fast path without the lock
        try:
            return load_torch(path)
        except CorruptCacheError:
            pass
    with file_lock(path):
        if path.exists():
            try:
                return load_torch(path)
            except CorruptCacheError as err:
                moved = quarantine(path)
                warnings.warn(f"corrupt cache entry {path} moved to {moved}; recomputing. ({err})", stacklevel=2)
        value = compute()
        atomic_torch_save(value, path)
        return value


def cached_checkpoint(path: Path | str, build: Callable[[], dict], *, what: str) -> str:
    """Path of a trained-on-first-use checkpoint: `build()` runs once under a file lock (parallel
    notebooks wait for the first one), its dict is written atomically; an unreadable file is moved
    aside with a warning naming `what` and rebuilt."""
    path = Path(path)
    with file_lock(path):
        if path.exists():
            try:
                load_torch(path)
                return str(path)
            except CorruptCacheError as err:
                moved = quarantine(path)
                warnings.warn(f"{what} checkpoint {path} was unreadable ({err}); moved to {moved} and "
                              "retraining it", stacklevel=3)
        atomic_torch_save(build(), path)
    return str(path)
