import sys
import time

from clipbook.report import provenance


def test_collect_names_commit_library_parameters_models_datasets_device_and_packages():
    from clipbook.data import registry

    provenance.reset()
    provenance.note_model({"name": "clipbook-tiny-rn", "weights": "toyworld:abc"})
    registry.load_dataset("toy", "val")
    stamp = provenance.collect(parameters={"seeds": [1, 2]}, device="cpu", started=time.time() - 2)
    assert stamp["models"] == [{"name": "clipbook-tiny-rn", "weights": "toyworld:abc"}]
    assert stamp["datasets"]["toy/val"]["split"] == "val"
    assert stamp["seeds"] == [1, 2] and stamp["parameters"] == {"seeds": [1, 2]}
    assert stamp["device"].startswith("cpu") and stamp["wall_time_s"] >= 2
    assert {"torch", "open_clip_torch", "numpy"} <= set(stamp["packages"])
    assert len(stamp["git"]["commit"]) in (40, len("unknown")) and stamp["git"]["dirty"] in (True, False, None)


def test_library_hash_covers_the_imported_modules_only():
    import clipbook.metrics  # noqa: F401

    assert "clipbook.metrics" in provenance.library_modules()
    assert provenance.library_hash(["clipbook.metrics"]) != provenance.library_hash(["clipbook.baselines"])
    assert provenance.library_hash(["clipbook.metrics"]) == provenance.library_hash(["clipbook.metrics"])
    assert all(name.startswith("clipbook") for name in provenance.library_modules())
    assert "clipbook.metrics" in sys.modules


def test_describe_gives_short_lines_for_a_reader_and_leaves_absent_fields_out():
    stamp = {"git": {"commit": "0123456789abcdef", "dirty": True}, "library_hash": "feed",
             "models": [{"name": "RN50-quickgelu", "pretrained": "openai"}, {"name": "bare"}],
             "datasets": {"toy/test": {"size": 10}, "toy/train": {"size": 5}, "eurosat/test": {"size": 3}},
             "device": "cpu", "seeds": [1, 2], "packages": {"torch": "2.14.1"}}
    lines = provenance.describe(stamp)
    assert lines["commit"] == "0123456789 (uncommitted changes)"
    assert lines["models"] == "RN50-quickgelu (openai); bare"
    eurosat, toy = lines["data"].split("; ")
    assert eurosat.startswith("eurosat (test) #") and toy.startswith("toy (test, train) #")
    # the digest identifies the data: other fingerprints, another digest
    changed = provenance.describe({**stamp, "datasets": {**stamp["datasets"], "toy/test": {"size": 11}}})["data"]
    assert changed.split("; ")[0] == eurosat and changed.split("; ")[1] != toy
    assert lines["seeds"] == "[1, 2]" and lines["packages"] == "torch 2.14.1" and "finished" not in lines
    assert provenance.describe({}) == {}
