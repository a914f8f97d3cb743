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
    assert benchmarks.classnames("toy-rs") == list(world.FAMILY_CLASSES["satellite"])
    context, stuff = benchmarks.classnames("toy-context"), benchmarks.classnames("toy-stuff")
    assert set(benchmarks.STUFF.values()) <= set(context) and len(stuff) == 76 + 6
    assert all(len(set(benchmarks.classnames(n))) == len(benchmarks.classnames(n)) for n in benchmarks.OVSS_BENCHMARKS)


@pytest.mark.parametrize("name, unlabelled", [("toy-voc21", 0), ("toy-voc20", IGNORE_INDEX), ("toy-context", None),
                                               ("toy-rs", "tile")])
def test_label_maps_follow_the_visible_object_masks(monkeypatch, name, unlabelled):
    _small(monkeypatch)
    data = benchmarks.load_segmentation(name)
    names = data.classnames
    size = benchmarks.IMAGE_SIZE
    for mosaic, labels in zip(benchmarks.scenes(name), data.labels):
        assert labels.shape == (size, size) and len(mosaic.tiles) == benchmarks.GRID ** 2
        annotations = mosaic.annotations()
        objects = np.logical_or.reduce([a["mask"] for a in annotations])
        for annotation in annotations:
            assert np.all(labels[annotation["mask"]] == names.index(annotation["classname"]))
        # each tile's unlabelled pixels carry that tile's own surface (or the benchmark's background / ignore)
        for tile, (top, left) in zip(mosaic.tiles, mosaic.offsets()):
            window = (slice(top, top + benchmarks.TILE), slice(left, left + benchmarks.TILE))
            rest = labels[window][~objects[window]]
            expected = {None: lambda: names.index(benchmarks.STUFF[tile.background]),
                        "tile": lambda: names.index(tile.classname)}.get(unlabelled, lambda: unlabelled)()
            assert np.all(rest == expected) and (rest.size or unlabelled == "tile")
    valid = data.labels[data.labels != IGNORE_INDEX]
    assert valid.min() >= 0 and valid.max() < len(names)


def test_images_are_the_rendered_scenes_and_splits_are_deterministic_and_distinct(monkeypatch):
    _small(monkeypatch, images=4)
    data = benchmarks.load_segmentation("toy-stuff")
    mosaics = benchmarks.scenes("toy-stuff")
    tiles, _ = world.render_batch([t for m in mosaics for t in m.tiles])
    t = benchmarks.TILE
    for index, mosaic in enumerate(mosaics):  # tile i sits at row i // 2, column i % 2, by an explicit loop
        for i, (top, left) in enumerate(mosaic.offsets()):
            assert (top, left) == (t * (i // 2), t * (i % 2))
            assert np.array_equal(data.images[index, top:top + t, left:left + t], tiles[4 * index + i])
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


def test_tiles_are_drawn_as_the_toy_photo_splits_draw_them(monkeypatch):
    _small(monkeypatch, images=50)
    tiles = [t for m in benchmarks.scenes("toy-context", "val") for t in m.tiles]
    assert {t.size for t in tiles} == {"small", "large"} and {t.domain for t in tiles} == {"photo"}
    assert max(max(abs(t.dx), abs(t.dy)) for t in tiles) <= 0.05 and not any(t.extras for t in tiles)
    assert {t.classname for t in tiles} <= set(benchmarks.OVSS_BENCHMARKS["toy-context"]["things"])


def test_land_use_tiles_are_aerial_and_each_one_region(monkeypatch):
    _small(monkeypatch, images=5)
    data = benchmarks.load_segmentation("toy-rs", "val")
    for mosaic, labels, regions in zip(benchmarks.scenes("toy-rs", "val"), data.labels,
                                       benchmarks.region_texts("toy-rs", "val")):
        assert {t.domain for t in mosaic.tiles} == {"aerial"} and len(regions) == 4
        for region in regions:
            x0, y0, x1, y1 = region["box"]
            assert x1 - x0 == y1 - y0 == benchmarks.TILE
            assert np.all(labels[y0:y1, x0:x1] == data.classnames.index(region["classname"]))
