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
