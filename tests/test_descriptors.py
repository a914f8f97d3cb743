import json

import pytest

from clipbook import descriptors
from clipbook.toyworld import suite, world


def test_toyworld_descriptors_are_every_suite_class_with_its_descriptions():
    loaded = descriptors.load_descriptors("toyworld")
    assert list(loaded) == list(world.CLASSES) and len(loaded) >= 100
    for spec in suite.SUITE.values():
        classnames = world.FAMILY_CLASSES[spec["family"]]
        assert descriptors.descriptors_for(classnames, loaded) == [world.CLASSES[c]["descriptions"] for c in classnames]
    assert all(len(d) >= 2 for d in loaded.values())
    loaded["circle"].append("edited")  # a copy: editing it leaves the world alone
    assert "edited" not in world.CLASSES["circle"]["descriptions"]


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


CBD_FILES = ("cub", "dtd", "eurosat", "food101", "imagenet", "pets", "places365")


@pytest.mark.parametrize("stem", CBD_FILES)
def test_classify_by_description_sources_are_pinned_raw_files_of_the_official_repo(stem):
    config = descriptors.DESCRIPTOR_SOURCES[f"cbd-{stem}"]
    assert config["kind"] == "json-url"
    assert config["url"] == ("https://raw.githubusercontent.com/sachit-menon/classify_by_description_release/"
                             f"{descriptors.CBD_COMMIT}/descriptors/descriptors_{stem}.json")
    assert len(descriptors.CBD_COMMIT) == 40 and int(descriptors.CBD_COMMIT, 16) >= 0  # a full commit, not a branch
    assert config["file"].endswith(f"descriptors/descriptors_{stem}.json") and "Menon" in config["paper"]


def test_classify_by_description_source_offline_names_its_url(cache_root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(descriptors.MissingDescriptorsError) as err:
        descriptors.load_descriptors("cbd-imagenet")
    assert descriptors.DESCRIPTOR_SOURCES["cbd-imagenet"]["url"] in str(err.value)
    assert str(descriptors.descriptor_file("cbd-imagenet")) in str(err.value)


def test_classify_by_description_file_placed_by_hand_keeps_the_released_class_order(cache_root, monkeypatch):
    # the official code maps labels to the file's key order, so loading must not reorder classes
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    released = {"Abyssinian": ["black, grey, or brown fur"], "american bulldog": ["a muscular build"], "Bengal": []}
    descriptors.descriptor_file("cbd-pets").write_text(json.dumps(released))
    loaded = descriptors.load_descriptors("cbd-pets")
    assert list(loaded) == list(released) and loaded["Bengal"] == []


@pytest.mark.parametrize("dataset, stem", sorted(descriptors.NOLA_FILES.items()))
def test_nola_sources_are_pinned_raw_files_of_the_official_repo(dataset, stem):
    config = descriptors.DESCRIPTOR_SOURCES[f"nola-{dataset}"]
    assert config["kind"] == "json-url"
    assert config["url"] == ("https://raw.githubusercontent.com/fazliimam/NoLA/"
                             f"{descriptors.NOLA_COMMIT}/descriptions/generic/{stem}.json")
    assert len(descriptors.NOLA_COMMIT) == 40 and int(descriptors.NOLA_COMMIT, 16) >= 0
    assert "NoLA" in config["paper"]


def test_nola_source_offline_names_its_url_and_reads_a_file_placed_by_hand(cache_root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(descriptors.MissingDescriptorsError) as err:
        descriptors.load_descriptors("nola-eurosat")
    assert descriptors.DESCRIPTOR_SOURCES["nola-eurosat"]["url"] in str(err.value)
    released = {"Annual Crop Land": ["A satellite photo of Annual Crop Land shows a patchwork of fields."]}
    descriptors.descriptor_file("nola-eurosat").write_text(json.dumps(released))
    assert descriptors.descriptors_for(["Annual Crop Land"], descriptors.load_descriptors("nola-eurosat")) == [
        released["Annual Crop Land"]]


def test_the_rehearsal_reads_generated_stand_ins_of_released_files_in_their_format(cache_root, monkeypatch):
    from clipbook.data import fake_layouts, registry

    monkeypatch.setenv("CLIPBOOK_PROFILE", "rehearsal")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing is downloaded: the stand-in is generated
    found = descriptors.load_descriptors("nola-eurosat")
    classnames = registry.load_dataset("eurosat", "test", root=fake_layouts.rehearsal_data_root()).classnames
    assert descriptors.descriptors_for(classnames, found)  # every generated class, in label order
    assert list(found) == classnames and all(len(d) == fake_layouts.DESCRIPTORS_PER_CLASS for d in found.values())
    assert (fake_layouts.rehearsal_data_root() / "descriptors" / "nola-eurosat.json").exists()
    assert not descriptors.descriptor_file("nola-eurosat").exists()  # the cache of real downloads is left alone
    monkeypatch.setitem(descriptors.DESCRIPTOR_SOURCES, "unit-json",
                        {"kind": "json-url", "url": "https://example.org/d.json"})
    with pytest.raises(descriptors.MissingDescriptorsError, match="names no registry dataset.*dataset=<registry name>"):
        descriptors.load_descriptors("unit-json")
