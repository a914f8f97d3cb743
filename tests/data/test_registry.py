import pytest
from PIL import Image

from clipbook.data import registry


def test_every_kind_is_registered_on_import():
    kinds = {config["kind"] for config in registry.DATASETS.values()}
    assert kinds == set(registry.KINDS)
    assert {"toy", "coop", "imagenet", "packaged", "groups"} <= kinds
    assert {"toy", "eurosat", "imagenet", "textile_sts", "waterbirds"} <= set(registry.known_datasets())


def test_registry_depends_on_nothing_else_in_data():
    import ast
    from pathlib import Path

    source = Path(registry.__file__).read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert not any(module and module.startswith("clipbook.data") for module in imported)


def test_a_new_kind_is_added_without_editing_the_registry(monkeypatch):
    monkeypatch.setattr(registry, "KINDS", dict(registry.KINDS))
    monkeypatch.setattr(registry, "DATASETS", dict(registry.DATASETS))
    registry.register_kind("pairs-for-this-test", lambda name, config, split, root: (name, split, config["n"]))
    registry.register_datasets({"toy-captions": {"kind": "pairs-for-this-test", "n": 3}})
    assert registry.load_dataset("toy-captions", "test") == ("toy-captions", "test", 3)
    with pytest.raises(ValueError, match="register its kind"):
        registry.register_datasets({"x": {"kind": "nope"}})
    with pytest.raises(ValueError, match="already registered"):
        registry.register_kind("pairs-for-this-test", lambda *a: None)


def test_toy_dataset_yields_images_labels_masks_and_captions():
    ds = registry.load_dataset("toy", "val")
    image, label = ds[0]
    assert isinstance(image, Image.Image) and image.size == (64, 64) and label == ds.labels[0]
    assert ds.mask(0).dtype == bool and len(ds.captions("short")) == len(ds)
    assert set(ds.attribute("domain")) == {"photo"} and ds.templates == ["a photo of a {}."]


def test_unknown_dataset_and_split_are_refused_with_known_values():
    with pytest.raises(registry.UnknownDatasetError, match="known datasets: .*toy"):
        registry.load_dataset("imagenot", "test")
    with pytest.raises(KeyError, match="known splits"):
        registry.load_dataset("toy", "tset")
    with pytest.raises(KeyError, match="has splits train, val, test"):
        registry.load_dataset("toy-noise", "noise-test")


def test_fingerprints_differ_between_splits():
    assert registry.load_dataset("toy", "val").fingerprint() != registry.load_dataset("toy", "test").fingerprint()
