import json

import pytest

from clipbook import descriptors
from clipbook.toyworld import world


def test_toyworld_descriptors_are_the_classes_descriptions():
    loaded = descriptors.load_descriptors("toyworld")
    assert list(loaded) == list(world.CLASS_NAMES)
    assert loaded["circle"] == world.CLASSES["circle"]["descriptions"]


def test_unknown_source_names_the_known_ones():
    with pytest.raises(KeyError, match="unknown descriptor source 'nope'; known: .*toyworld"):
        descriptors.load_descriptors("nope")


def test_offline_missing_file_says_where_from_and_where_to(cache_root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(descriptors.DESCRIPTOR_SOURCES, "unit-json",
                        {"kind": "json-url", "url": "https://example.org/d.json"})
    with pytest.raises(descriptors.MissingDescriptorsError) as err:
        descriptors.load_descriptors("unit-json")
    assert "https://example.org/d.json" in str(err.value) and str(descriptors.descriptor_file("unit-json")) in str(err.value)


def test_cached_file_is_read_without_network(cache_root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(descriptors.DESCRIPTOR_SOURCES, "unit-json",
                        {"kind": "json-url", "url": "https://example.org/d.json"})
    descriptors.descriptor_file("unit-json").write_text(json.dumps({"tench": ["a freshwater fish"]}))
    loaded = descriptors.load_descriptors("unit-json")
    assert descriptors.descriptors_for(["tench"], loaded) == [["a freshwater fish"]]
    with pytest.raises(KeyError, match="no descriptors for classes \\['goldfish'\\]"):
        descriptors.descriptors_for(["goldfish"], loaded)


def test_register_refuses_a_source_without_https_url():
    with pytest.raises(ValueError, match="https url"):
        descriptors.register_descriptor_source("bad", kind="json-url", url="ftp://x")
