import numpy as np
import pytest
from clipbook.dense import benchmarks
from clipbook.evaluation.segmentation import IGNORE_INDEX
from clipbook.toyworld import world


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPBOOK_CACHE", str(tmp_path))


def _small(monkeypatch, images=12):
    for spec in benchmarks.OVSS_BENCHMARKS.values():
        monkeypatch.setitem(spec, "images", images)


def test_vocabularies_mirror_their_benchmarks():
    assert len(benchmarks.classnames("toy-voc21")) == 21 and benchmarks.classnames("toy-voc21")[0] == "background"
    assert len(benchmarks.classnames("toy-voc20")) == 20
    context, stuff = benchmarks.classnames("toy-context"), benchmarks.classnames("toy-stuff")
    assert set(benchmarks.STUFF.values()) <= set(context) and len(stuff) == 76 + 6
    assert all(len(set(benchmarks.classnames(n))) == len(benchmarks.classnames(n)) for n in benchmarks.OVSS_BENCHMARKS)


@pytest.mark.parametrize("name, unlabelled", [("toy-voc21", 0), ("toy-voc20", IGNORE_INDEX), ("toy-context", None)])
def test_label_maps_follow_the_visible_object_masks(monkeypatch, name, unlabelled):
    _small(monkeypatch)
    data = benchmarks.load_segmentation(name)
    names = data.classnames
    for scene, labels in zip(benchmarks.scenes(name), data.labels):
        annotations = world.annotations(scene)
        objects = np.logical_or.reduce([a["mask"] for a in annotations])
        for annotation in annotations:
            assert np.all(labels[annotation["mask"]] == names.index(annotation["classname"]))
        rest = labels[~objects]
        expected = names.index(benchmarks.STUFF[scene.background]) if unlabelled is None else unlabelled
        assert np.all(rest == expected)
    valid = data.labels[data.labels != IGNORE_INDEX]
    assert valid.min() >= 0 and valid.max() < len(names)


def test_images_are_the_rendered_scenes_and_splits_are_deterministic_and_distinct(monkeypatch):
    _small(monkeypatch, images=4)
    data = benchmarks.load_segmentation("toy-stuff")
    images, _ = world.render_batch(benchmarks.scenes("toy-stuff"))
    assert np.array_equal(data.images, images)
    assert benchmarks.scenes("toy-stuff") == benchmarks.scenes("toy-stuff")
    assert benchmarks.scenes("toy-stuff", "val") != benchmarks.scenes("toy-stuff", "test")


def test_region_boxes_enclose_their_objects_pixels(monkeypatch):
    _small(monkeypatch, images=6)
    data = benchmarks.load_segmentation("toy-context")
    for regions, labels in zip(benchmarks.region_texts("toy-context"), data.labels):
        assert regions
        for region in regions:
            x0, y0, x1, y1 = region["box"]
            own = labels == data.classnames.index(region["classname"])
            assert own[y0:y1, x0:x1].any() and region["classname"] in region["phrase"]


def test_unknown_names_are_refused():
    with pytest.raises(KeyError, match="unknown segmentation benchmark 'voc'"):
        benchmarks.load_segmentation("voc")
    with pytest.raises(KeyError, match="unknown split"):
        benchmarks.scenes("toy-voc21", "training")


def test_the_train_split_is_larger_and_disjoint_from_the_evaluation_splits(monkeypatch):
    monkeypatch.setattr(benchmarks, "TRAIN_IMAGES", 30)
    _small(monkeypatch, images=10)
    train = benchmarks.scenes("toy-voc21", "train")
    assert len(train) == 30 and not set(map(repr, train)) & set(map(repr, benchmarks.scenes("toy-voc21", "test")))
