import json

import numpy as np
import pytest

from clipbook.data import fake_layouts, registry

SMALL = fake_layouts.LayoutSize(images_per_class={"train": 3, "val": 1, "test": 2}, classes=3,
                                imagenet_classes_with_images=2)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return fake_layouts.ensure_layouts(tmp_path_factory.mktemp("data"), size=SMALL)


def test_every_dataset_read_from_the_data_root_has_a_layout():
    file_backed = {name for name, config in registry.DATASETS.items()
                   if config["kind"] not in fake_layouts.NO_FILES_KINDS}
    assert set(fake_layouts.fakeable_datasets()) == file_backed
    assert {"eurosat", "fgvc_aircraft", "imagenet", "imagenet_a", "waterbirds", "celeba", "qe_genai_pan"} <= file_backed


# feature arrays are not images, segmentation labels are maps: tests/data/test_feature_arrays.py and
# tests/data/test_segmentation.py read their generated layouts
@pytest.mark.parametrize("name", [name for name in fake_layouts.fakeable_datasets()
                                  if registry.DATASETS[name]["kind"] not in ("feature-arrays", "mmseg")])
def test_the_real_loader_reads_every_split_of_the_generated_layout(root, name):
    for split in registry.DATASETS[name]["splits"]:
        dataset = registry.load_dataset(name, split, root=root)
        assert len(dataset) > 0 and len(dataset.classnames) >= 2
        image, label = dataset[len(dataset) - 1]
        assert image.mode == "RGB" and image.size[0] != image.size[1] and 0 <= label < len(dataset.classnames)
        assert dataset.fingerprint()["count"] == len(dataset)


def test_coop_splits_hold_the_requested_images_per_class(root):
    for split, per_class in SMALL.images_per_class.items():
        for name in ("eurosat", "fgvc_aircraft", "stanford_cars"):
            labels = registry.load_dataset(name, split, root=root).labels
            assert np.bincount(labels).tolist() == [per_class] * SMALL.classes, (name, split)
    split_file = json.loads((root / "eurosat" / "split_zhou_EuroSAT.json").read_text())
    assert set(split_file) == {"train", "val", "test"}
    assert all(len(item) == 3 and isinstance(item[1], int) for item in split_file["train"])


def test_imagenet_keeps_its_1000_classes_and_variants_their_conventions(root):
    train = registry.load_dataset("imagenet", "train", root=root)
    assert len(train.classnames) == 1000 and train.classnames[0] == "tench"
    assert len(list((root / "imagenet" / "images" / "val").iterdir())) == 1000  # every class folder exists
    assert len(np.unique(train.labels)) == SMALL.imagenet_classes_with_images
    assert len(list((root / "imagenet-rendition" / "imagenet-r").iterdir())) == 200
    v2_folders = {p.name for p in (root / "imagenetv2" / "imagenetv2-matched-frequency-format-val").iterdir()}
    assert v2_folders == {str(label) for label in range(1000)}  # ImageNetV2 names its folders by label index
    sketch = registry.load_dataset("imagenet_sketch", "test", root=root)
    assert sketch.class_subset.tolist() == [0, 999]


def test_group_layouts_fill_every_group_of_every_split(root):
    for name in ("waterbirds", "celeba"):
        for split, per_class in SMALL.images_per_class.items():
            groups = registry.load_dataset(name, split, root=root).groups
            assert np.bincount(groups, minlength=4).tolist() == [per_class] * 4, (name, split)


def test_layouts_are_written_once_and_rewritten_for_another_size(tmp_path):
    fake_layouts.ensure_layouts(tmp_path, ["eurosat"], size=SMALL)
    split_file = tmp_path / "eurosat" / "split_zhou_EuroSAT.json"
    written = split_file.stat().st_mtime_ns
    fake_layouts.ensure_layouts(tmp_path, ["eurosat"], size=SMALL)
    assert split_file.stat().st_mtime_ns == written
    fake_layouts.ensure_layouts(tmp_path, ["eurosat"], size=fake_layouts.DEFAULT_SIZE)
    assert len(registry.load_dataset("eurosat", "val", root=tmp_path)) == fake_layouts.DEFAULT_SIZE.classes


def test_datasets_without_files_or_unknown_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not read from the data root.*fakeable: .*eurosat"):
        fake_layouts.write_layout("toy", tmp_path)
    with pytest.raises(registry.UnknownDatasetError, match="unknown dataset 'eurosatt'"):
        fake_layouts.write_layout("eurosatt", tmp_path)


def test_the_qe_genai_clone_carries_its_stored_exp1_predictions(root):
    lines = (root / "qe_genai" / "results" / "exp01_results.csv").read_text().splitlines()
    assert lines[0] == "image_name,classification_result" and len(lines) == 101


def test_capS_support_sets_are_written_in_the_official_scripts_layout(root):
    eurosat = registry.load_dataset("eurosat", "train", root=root)
    support = root / fake_layouts.CAPS_FOLDER / "caps_sd" / "eurosat"
    for classname in eurosat.classnames:
        listing = json.loads((support / classname.lower().replace(" ", "_") / "updated_data.json").read_text())
        assert len(listing) == SMALL.images_per_class.get("all", 1)
        assert all((root / fake_layouts.CAPS_FOLDER / entry["image_path"]).exists() for entry in listing)
        assert all(entry["caption"].startswith(f"A photo of {classname}.") for entry in listing)
    assert (root / fake_layouts.CAPS_FOLDER / "caps_sd" / "oxfordpets").is_dir()  # the official scripts' name


def test_descriptor_stand_ins_describe_each_class_once_even_where_names_repeat():
    described = fake_layouts.descriptor_stand_in(["missile", "tench", "missile"])
    assert list(described) == ["missile", "tench", "missile (2)"]
