import os
import threading
import warnings

import pytest
import torch

from clipbook import cache


def test_content_key_ignores_dict_order_and_changes_with_content():
    assert cache.content_key({"a": 1, "b": [1, 2]}) == cache.content_key({"b": [1, 2], "a": 1})
    assert cache.content_key({"a": 1}) != cache.content_key({"a": 2})


def test_cached_computes_once_then_loads(cache_root):
    calls = []

    def compute():
        calls.append(1)
        return torch.arange(5)

    first = cache.cached("features", {"x": 1}, compute)
    second = cache.cached("features", {"x": 1}, compute)
    assert torch.equal(first, second) and len(calls) == 1
    assert len(list((cache_root / "features").glob("*.pt"))) == 1


def test_numpy_results_load_back_instead_of_being_recomputed_every_run(cache_root):
    import numpy as np

    calls = []
    value = {"accuracy": np.float64(0.5), "labels": np.arange(4), "names": np.array(["a", "b"]), "flag": np.bool_(1)}

    def compute():
        calls.append(1)
        return value

    cache.cached("runs", {"x": 3}, compute)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a read refused as corrupt would warn and recompute
        again = cache.cached("runs", {"x": 3}, compute)
    assert len(calls) == 1 and not list((cache_root / "runs").glob("*.corrupt"))
    assert again["accuracy"] == 0.5 and np.array_equal(again["labels"], value["labels"]) and again["flag"]
    assert list(again["names"]) == ["a", "b"]


def test_entry_path_is_where_cached_writes_its_result(cache_root):
    path = cache.entry_path("features", {"x": 2}, name="probe")
    assert not path.exists()
    cache.cached("features", {"x": 2}, lambda: torch.ones(1), name="probe")
    assert path.exists() and list((cache_root / "features").glob("*.pt")) == [path]


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    target = tmp_path / "x.pt"
    with pytest.raises(RuntimeError):
        cache.atomic_torch_save(Unpicklable(), target)
    assert not target.exists() and not list(tmp_path.iterdir())


def test_corrupt_entry_is_moved_aside_with_a_warning_naming_it_and_recomputed(cache_root):
    cache.cached("features", {"k": 1}, lambda: torch.ones(3))
    (path,) = (cache_root / "features").glob("*.pt")
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match=f"corrupt cache entry {path}"):
        value = cache.cached("features", {"k": 1}, lambda: torch.zeros(3))
    assert torch.equal(value, torch.zeros(3))
    assert path.with_name(path.name + ".corrupt").exists()  # kept for inspection, nothing lost


def test_checkpoint_is_built_once_and_rebuilt_with_a_warning_when_unreadable(tmp_path):
    builds = []

    def build():
        builds.append(1)
        return {"state_dict": {"w": torch.full((2,), float(len(builds)))}}

    path = tmp_path / "checkpoints" / "tiny-abc.pt"
    assert cache.cached_checkpoint(path, build, what="tiny thing") == str(path)
    assert cache.cached_checkpoint(path, build, what="tiny thing") == str(path) and len(builds) == 1
    with open(path, "r+b") as handle:  # truncate: a crash mid-copy, a bad disk
        handle.truncate(10)
    with pytest.warns(UserWarning, match="tiny thing checkpoint .*tiny-abc.pt was unreadable"):
        cache.cached_checkpoint(path, build, what="tiny thing")
    assert len(builds) == 2 and torch.equal(cache.load_torch(path)["state_dict"]["w"], torch.full((2,), 2.0))
    assert path.with_name(path.name + ".corrupt").exists()


def test_load_torch_error_says_what_to_do(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(cache.CorruptCacheError, match="delete it"):
        cache.load_torch(bad)


def test_concurrent_first_uses_compute_once(cache_root):
    calls, results = [], []

    def compute():
        calls.append(1)
        threading.Event().wait(0.2)
        return torch.tensor([7])

    threads = [threading.Thread(target=lambda: results.append(cache.cached("c", {"z": 1}, compute)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(torch.equal(r, torch.tensor([7])) for r in results)


def test_cache_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CLIPBOOK_CACHE", str(tmp_path / "elsewhere"))
    assert cache.cache_dir("features") == tmp_path / "elsewhere" / "features"
    assert os.path.isdir(tmp_path / "elsewhere" / "features")
