import numpy as np
import pytest
from PIL import Image

from clipbook.data import fake_layouts, registry, segmentation
from clipbook.evaluation.segmentation import IGNORE_INDEX

NAMES = list(segmentation.SEGMENTATION_DATASETS)


@pytest.mark.parametrize("name", NAMES)
def test_missing_benchmark_names_where_it_comes_from(name, tmp_path):
    with pytest.raises(registry.MissingDatasetError, match=f"{name} not found.*get "):
        registry.load_dataset(name, "val", root=tmp_path)
    with pytest.raises(KeyError, match="splits val"):
        registry.load_dataset(name, "train", root=tmp_path)


def test_generated_layouts_read_back_with_each_benchmarks_label_range(tmp_path):
    fake_layouts.ensure_layouts(tmp_path, NAMES)
    for name in NAMES:
        dataset = registry.load_dataset(name, "val", root=tmp_path)
        image, label = dataset[0]
        assert image.mode == "RGB" and label.shape == (image.size[1], image.size[0]) and label.dtype == np.int64
        valid = label[label != IGNORE_INDEX]
        assert valid.min() >= 0 and valid.max() < len(dataset.classnames), name


def test_reduced_labels_drop_background_and_shift(tmp_path):
    """VOC20 reads the VOC21 map with 0 -> ignore and every class one lower (mmseg reduce_zero_label)."""
    folder = tmp_path / "VOCdevkit" / "VOC2012"
    (folder / "ImageSets" / "Segmentation").mkdir(parents=True)
    (folder / "ImageSets" / "Segmentation" / "val.txt").write_text("a\n")
    (folder / "JPEGImages").mkdir()
    Image.new("RGB", (3, 2)).save(folder / "JPEGImages" / "a.jpg")
    (folder / "SegmentationClass").mkdir()
    labels = np.array([[0, 1, 20], [255, 15, 0]], np.uint8)
    palette = Image.fromarray(labels, mode="P")  # VOC's maps are palette PNGs: the indices are the labels
    palette.putpalette([i % 256 for i in range(768)])
    palette.save(folder / "SegmentationClass" / "a.png")
    _, voc21 = registry.load_dataset("voc21", "val", root=tmp_path)[0]
    _, voc20 = registry.load_dataset("voc20", "val", root=tmp_path)[0]
    np.testing.assert_array_equal(voc21, labels.astype(np.int64))
    np.testing.assert_array_equal(voc20, [[255, 0, 19], [255, 14, 255]])
    assert registry.load_dataset("voc20", "val", root=tmp_path).classnames[0] == "aeroplane"
