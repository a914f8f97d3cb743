"""Caption datasets (COCO / Flickr30k Karpathy splits, COCO val2017, Urban-1k): layouts, pairing, clear errors."""
import json

import pytest

from clipbook.data import captions, fake_layouts
from clipbook.data.registry import MissingDatasetError, load_dataset


@pytest.mark.parametrize("name", sorted(captions.CAPTION_DATASETS))
def test_missing_set_names_itself_and_where_to_get_it(tmp_path, name):
    with pytest.raises(MissingDatasetError, match=rf"{name} .*not found.*\n.*http"):
        load_dataset(name, captions.CAPTION_DATASETS[name]["splits"][0], root=tmp_path)


@pytest.mark.parametrize("name", sorted(captions.CAPTION_DATASETS))
def test_fake_layout_reads_back_with_captions_paired_to_images(tmp_path, name):
    fake_layouts.write_layout(name, tmp_path)
    dataset = load_dataset(name, captions.CAPTION_DATASETS[name]["splits"][0], root=tmp_path)
    texts, owner = dataset.caption_pairs()
    assert len(dataset) == len(dataset.captions) > 1 and len(texts) == len(owner) >= len(dataset)
    assert owner.tolist() == sorted(owner.tolist()) and set(owner.tolist()) == set(range(len(dataset)))
    assert dataset[0][0].mode == "RGB" and dataset[1][1] == 1
    assert dataset.fingerprint()["captions_sha256"]
    if name == "urban1k":
        assert all(len(group) == 1 and len(group[0].split()) > 77 for group in dataset.captions)


def test_karpathy_split_selects_its_split_and_the_image_folder(tmp_path):
    folder = fake_layouts.write_layout("coco_karpathy_test", tmp_path)
    test, val = load_dataset("coco_karpathy_test", "test", root=tmp_path), load_dataset("coco_karpathy_test", "val",
                                                                                         root=tmp_path)
    assert all(p.startswith("val2014/test_") for p in test.relative_paths)
    assert all(p.startswith("val2014/val_") for p in val.relative_paths)
    data = json.loads((folder / "dataset_coco.json").read_text())
    assert test.captions[0] == [s["raw"] for s in data["images"][0]["sentences"]]
    with pytest.raises(ValueError, match="unknown split 'train'"):
        load_dataset("coco_karpathy_test", "train", root=tmp_path)


def test_coco_train2017_and_val2017_layouts_coexist(tmp_path):
    fake_layouts.ensure_layouts(tmp_path, ["coco_val2017", "coco_train2017"])
    train, val = load_dataset("coco_train2017", "train", root=tmp_path), load_dataset("coco_val2017", "test", root=tmp_path)
    assert train.fingerprint() != val.fingerprint() and (tmp_path / "coco2017-train" / "train2017").is_dir()
    with pytest.raises(ValueError, match="unknown split 'test'"):
        load_dataset("coco_train2017", "test", root=tmp_path)


def test_a_missing_image_or_a_broken_file_fails_when_opened(tmp_path):
    folder = fake_layouts.write_layout("flickr30k_test", tmp_path)
    next((folder / "flickr30k-images").glob("test_*.jpg")).unlink()
    with pytest.raises(MissingDatasetError, match="1 of .* images missing"):
        load_dataset("flickr30k_test", "test", root=tmp_path)
    (folder / "dataset_flickr30k.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_dataset("flickr30k_test", "test", root=tmp_path)
    (folder / "dataset_flickr30k.json").write_text(json.dumps({"images": [{"split": "test"}]}))
    with pytest.raises(ValueError, match="not a Karpathy split file"):
        load_dataset("flickr30k_test", "test", root=tmp_path)


def test_urban1k_images_without_a_caption_file_are_an_error(tmp_path):
    folder = fake_layouts.write_layout("urban1k", tmp_path)
    (folder / "caption" / "2.txt").unlink()
    with pytest.raises(ValueError, match="no caption file .*2.txt"):
        load_dataset("urban1k", "test", root=tmp_path)


@pytest.mark.parametrize("name, annotation, first_image", [
    ("rsicd", "dataset_rsicd.json", "RSICD_images/test_000000.jpg"),
    ("rsitmd", "dataset_RSITMD.json", "images/test_000000.tif"),
    ("ucm_captions", "dataset.json", "imgs/test_000000.tif")])
def test_remote_sensing_sets_read_their_release_layouts(tmp_path, name, annotation, first_image):
    """The file names and the TIFF images of the releases (RSITMD and UCM-captions ship .tif)."""
    folder = fake_layouts.write_layout(name, tmp_path)
    assert (folder / annotation).exists()
    dataset = load_dataset(name, "test", root=tmp_path)
    assert dataset.relative_paths[0] == first_image and dataset[0][0].mode == "RGB"
    assert len(dataset.captions[0]) == 5


def test_flickr30k_train_split_reads_its_own_images_once(tmp_path):
    fake_layouts.write_layout("flickr30k_test", tmp_path)
    train, test = load_dataset("flickr30k_test", "train", root=tmp_path), load_dataset("flickr30k_test", "test",
                                                                                      root=tmp_path)
    assert len(train) == len(test) and all(p.startswith("flickr30k-images/train_") for p in train.relative_paths)
    assert len(set(train.relative_paths)) == len(train)
