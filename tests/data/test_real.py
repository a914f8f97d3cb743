import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipbook.data import fake_layouts, real, registry

EUROSAT_SPLIT = {
    "train": [["AnnualCrop/a1.jpg", 0, "Annual Crop Land"], ["Forest/f1.jpg", 1, "Forest"],
              ["River/r1.jpg", 2, "River"]],
    "val": [["Forest/f2.jpg", 1, "Forest"]],
    # class 2 (River) occurs only in train: classnames must still list it
    "test": [["Forest/f3.jpg", 1, "Forest"], ["AnnualCrop/a2.jpg", 0, "Annual Crop Land"]],
}


def write_image(path, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (8, 8)).save(path)


def make_eurosat(root, split=EUROSAT_SPLIT):
    dataset_dir = root / "eurosat"
    for items in split.values():
        for impath, _, _ in items:
            write_image(dataset_dir / "2750" / impath, mode="L")  # greyscale on disk, RGB when read
    (dataset_dir / "split_zhou_EuroSAT.json").write_text(json.dumps(split))
    return root


def make_classnames(path, wnids):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{wnid} class {wnid}\n" for wnid in wnids))


def files_under(root):
    return sorted(p.relative_to(root) for p in root.rglob("*"))


def test_coop_dataset_reads_the_split_file(tmp_path):
    ds = real.load_real_dataset("eurosat", registry.DATASETS["eurosat"], "test", make_eurosat(tmp_path))
    assert (ds.name, ds.split, len(ds)) == ("eurosat", "test", 2)
    assert ds.classnames == ["Annual Crop Land", "Forest", "River"]
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [1, 0]
    assert ds.templates == ["a centered satellite photo of {}."]
    image, label = ds[1]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (8, 8) and label == 0


def test_images_are_opened_on_access_not_at_construction(tmp_path):
    make_eurosat(tmp_path)
    (tmp_path / "eurosat" / "2750" / "Forest" / "f3.jpg").unlink()
    ds = registry.load_dataset("eurosat", "test", root=tmp_path)
    assert len(ds) == 2 and ds[1][1] == 0
    with pytest.raises(FileNotFoundError):
        ds[0]


def test_fingerprint_survives_moving_the_root(tmp_path):
    original = registry.load_dataset("eurosat", "train", root=make_eurosat(tmp_path / "here"))
    shutil.copytree(tmp_path / "here", tmp_path / "elsewhere")
    moved = registry.load_dataset("eurosat", "train", root=tmp_path / "elsewhere")
    assert moved.fingerprint() == original.fingerprint()
    assert str(tmp_path) not in json.dumps(original.fingerprint())
    assert original.fingerprint()["count"] == 3


def test_fingerprint_changes_with_split_content_and_order(tmp_path):
    def fingerprint(split, name):
        return registry.load_dataset("eurosat", "test", root=make_eurosat(tmp_path / name, split)).fingerprint()

    base = fingerprint(EUROSAT_SPLIT, "base")
    relabelled = {**EUROSAT_SPLIT, "test": [["Forest/f3.jpg", 2, "River"], EUROSAT_SPLIT["test"][1]]}
    shorter = {**EUROSAT_SPLIT, "test": EUROSAT_SPLIT["test"][:1]}
    reordered = {**EUROSAT_SPLIT, "test": EUROSAT_SPLIT["test"][::-1]}  # cached features are positional
    assert fingerprint(relabelled, "relabelled") != base
    assert fingerprint(shorter, "shorter") != base
    assert fingerprint(reordered, "reordered") != base
    assert registry.load_dataset("eurosat", "val", root=tmp_path / "base").fingerprint() != base


def test_missing_split_file_is_an_error_and_no_split_is_generated(tmp_path):
    fake_layouts.write_layout("eurosat", tmp_path)
    (tmp_path / "eurosat" / "split_zhou_EuroSAT.json").unlink()
    before = files_under(tmp_path)
    with pytest.raises(registry.MissingDatasetError) as error:
        registry.load_dataset("eurosat", "train", root=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "eurosat" / "split_zhou_EuroSAT.json") in message
    assert f"Download split_zhou_EuroSAT.json as described in CoOp's DATASETS.md into {tmp_path / 'eurosat'}" in message
    assert files_under(tmp_path) == before


def test_missing_dataset_or_image_folder_names_the_path_and_a_source(tmp_path):
    with pytest.raises(registry.MissingDatasetError) as error:
        registry.load_dataset("oxford_pets", "test", root=tmp_path)
    assert str(tmp_path / "oxford_pets") in str(error.value)
    assert "torchvision.datasets.OxfordIIITPet" in str(error.value)

    (tmp_path / "dtd").mkdir()
    with pytest.raises(registry.MissingDatasetError) as error:
        registry.load_dataset("dtd", "test", root=tmp_path)
    assert f"image folder not found: {tmp_path / 'dtd' / 'images'}" in str(error.value)
    assert "torchvision.datasets.DTD" in str(error.value)
    assert files_under(tmp_path) == [Path("dtd")]


def test_unknown_split_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="known splits: train, val, test"):
        registry.load_dataset("eurosat", "tset", root=fake_layouts.write_layout("eurosat", tmp_path).parent)
    with pytest.raises(ValueError, match="known splits: train, val, test"):
        registry.load_dataset("imagenet", "tset", root=tmp_path)
    with pytest.raises(ValueError, match="known splits: test"):
        registry.load_dataset("imagenet_r", "train", root=tmp_path)


def test_fgvc_aircraft_reads_the_official_variant_lists(tmp_path):
    dataset_dir = tmp_path / "fgvc_aircraft"
    dataset_dir.mkdir()
    (dataset_dir / "variants.txt").write_text("707-320\nCessna 172\nA300B4\n")
    (dataset_dir / "images_variant_test.txt").write_text("0001 A300B4\n0002 Cessna 172\n")
    for image_id in ("0001", "0002"):
        write_image(dataset_dir / "images" / f"{image_id}.jpg")
    ds = registry.load_dataset("fgvc_aircraft", "test", root=tmp_path)
    assert ds.classnames == ["707-320", "Cessna 172", "A300B4"]
    assert ds.labels.tolist() == [2, 1]
    assert ds.templates == ["a photo of a {}, a type of aircraft."]
    assert ds[1][0].mode == "RGB"
    with pytest.raises(registry.MissingDatasetError, match="images_variant_train.txt"):
        registry.load_dataset("fgvc_aircraft", "train", root=tmp_path)


def make_imagenet(root, wnids):
    make_classnames(root / "imagenet" / "classnames.txt", wnids)
    for wnid in wnids[:3]:
        write_image(root / "imagenet" / "images" / "train" / wnid / "t1.JPEG")
        write_image(root / "imagenet" / "images" / "train" / wnid / "t2.JPEG")
    for wnid in wnids[1:3]:
        write_image(root / "imagenet" / "images" / "val" / wnid / "v.JPEG")
    return root


WNIDS = ["n03000000", "n01000000", "n05000000", "n02000000", "n04000000"]  # not in sorted order


def test_imagenet_labels_follow_classnames_order_and_test_reads_val(tmp_path):
    make_imagenet(tmp_path, WNIDS)
    train = registry.load_dataset("imagenet", "train", root=tmp_path)
    assert train.classnames == [f"class {wnid}" for wnid in WNIDS]
    assert len(train) == 6 and sorted(set(train.labels.tolist())) == [0, 1, 2]
    assert all(train.classnames[label] == f"class {path.split('/')[3]}"
               for path, label in zip(train.relative_paths, train.labels.tolist()))
    test = registry.load_dataset("imagenet", "test", root=tmp_path)
    assert test.relative_paths == ["imagenet/images/val/n01000000/v.JPEG", "imagenet/images/val/n05000000/v.JPEG"]
    assert test.labels.tolist() == [1, 2] and test.templates == ["a photo of a {}."]
    assert test[0][0].mode == "RGB"
    # CoOp/GDA select hyper-parameters on the same official val set they test on (imagenet.py: val = test)
    assert registry.load_dataset("imagenet", "val", root=tmp_path).relative_paths == test.relative_paths


def test_imagenet_missing_parts_explain_the_manual_download(tmp_path):
    with pytest.raises(registry.MissingDatasetError, match="download it manually"):
        registry.load_dataset("imagenet", "test", root=tmp_path)
    fake_layouts.write_layout("imagenet", tmp_path)
    assert len(registry.load_dataset("imagenet", "test", root=tmp_path).classnames) == 1000
    (tmp_path / "imagenet" / "classnames.txt").unlink()
    with pytest.raises(registry.MissingDatasetError) as error:
        registry.load_dataset("imagenet", "test", root=tmp_path)
    assert str(tmp_path / "imagenet" / "classnames.txt") in str(error.value)
    assert "open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES" in str(error.value)


def test_imagenet_r_labels_index_the_full_imagenet_order(tmp_path):
    make_classnames(tmp_path / "imagenet-rendition" / "classnames.txt", WNIDS)
    image_dir = tmp_path / "imagenet-rendition" / "imagenet-r"
    for wnid in (WNIDS[3], WNIDS[1]):
        write_image(image_dir / wnid / "art_0.jpg")
        write_image(image_dir / wnid / "art_1.jpg")
    (image_dir / "README.txt").write_text("not a class")
    ds = registry.load_dataset("imagenet_r", "test", root=tmp_path)
    assert ds.classnames == [f"class {wnid}" for wnid in WNIDS]
    assert ds.labels.tolist() == [1, 1, 3, 3]
    assert ds.class_subset.tolist() == [1, 3]
    assert ds.templates == ["a photo of a {}."] and ds[0][0].mode == "RGB"


def test_imagenet_variants_fall_back_to_imagenet_classnames_and_refuse_unknown_folders(tmp_path):
    make_classnames(tmp_path / "imagenet" / "classnames.txt", WNIDS)
    image_dir = tmp_path / "imagenetv2" / "imagenetv2-matched-frequency-format-val"
    write_image(image_dir / "4" / "x.jpeg")
    write_image(image_dir / "0" / "y.jpeg")
    ds = registry.load_dataset("imagenet_v2", "test", root=tmp_path)
    assert ds.labels.tolist() == [0, 4] and len(ds.classnames) == 5
    write_image(image_dir / "5" / "z.jpeg")  # only 5 classes: label 5 does not exist
    with pytest.raises(ValueError, match="does not match any class"):
        registry.load_dataset("imagenet_v2", "test", root=tmp_path)


def test_missing_imagenet_variant_states_the_expected_layout(tmp_path):
    with pytest.raises(registry.MissingDatasetError) as error:
        registry.load_dataset("imagenet_a", "test", root=tmp_path)
    assert str(tmp_path / "imagenet-adversarial" / "imagenet-a") in str(error.value)
    assert "<wnid>" in str(error.value) and "natural-adv-examples" in str(error.value)


def test_registry_lists_and_loads_the_real_datasets(tmp_path):
    coop = {"caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101", "fgvc_aircraft",
            "sun397", "dtd", "eurosat", "ucf101"}
    variants = {"imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"}
    assert coop | variants | {"imagenet", "toy"} <= set(registry.known_datasets())
    assert {registry.DATASETS[name]["kind"] for name in coop} == {"coop"}
    assert {registry.DATASETS[name]["kind"] for name in variants} == {"imagenet-variant"}
    assert registry.DATASETS["dtd"]["template"] == "{} texture."
    assert registry.DATASETS["ucf101"]["template"] == "a photo of a person doing {}."
    assert registry.DATASETS["food101"]["template"] == "a photo of {}, a type of food."
    for name in coop | variants | {"imagenet"}:  # the layouts clipbook.data.fake_layouts writes
        fake_layouts.write_layout(name, tmp_path)
        assert len(registry.load_dataset(name, "test", root=tmp_path)) > 0
    with pytest.raises(registry.UnknownDatasetError, match="known datasets: .*eurosat.*imagenet_r"):
        registry.load_dataset("nope", "test")
