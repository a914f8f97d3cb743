import csv

import pytest
from PIL import Image

from clipbook.data import groups, registry

# img_filename, y, split, place: one image per (split, y, place) except a missing waterbird/land in val
WATERBIRDS_ROWS = [
    ("001.Black_footed_Albatross/a.jpg", 1, 0, 1), ("002.Laysan_Albatross/b.jpg", 1, 0, 0),
    ("010.Red_winged_Blackbird/c.jpg", 0, 0, 0), ("011.Rusty_Blackbird/d.jpg", 0, 0, 1),
    ("010.Red_winged_Blackbird/e.jpg", 0, 1, 0), ("001.Black_footed_Albatross/f.jpg", 1, 1, 1),
    ("011.Rusty_Blackbird/g.jpg", 0, 2, 1), ("002.Laysan_Albatross/h.jpg", 1, 2, 0),
]


def write_image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (6, 6)).save(path)


def make_waterbirds(root, rows=WATERBIRDS_ROWS, images=True):
    folder = root / "waterbird_complete95_forest2water2"
    folder.mkdir(parents=True)
    with open(folder / "metadata.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["img_id", "img_filename", "y", "split", "place", "place_filename"])
        for index, (filename, y, split, place) in enumerate(rows):
            writer.writerow([index + 1, filename, y, split, place, "/x/y.jpg"])
            if images:
                write_image(folder / filename)
    return root


# image id, Blond_Hair, Male, partition
CELEBA_ROWS = [("000001.jpg", -1, -1, 0), ("000002.jpg", 1, -1, 0), ("000003.jpg", 1, 1, 2),
               ("000004.jpg", -1, 1, 2), ("000005.jpg", 1, -1, 2), ("000006.jpg", -1, -1, 1)]
CELEBA_COLUMNS = ["5_o_Clock_Shadow", "Blond_Hair", "Male", "Young"]


def make_celeba(root, style="torchvision"):
    folder = root / "celeba"
    for image_id, *_ in CELEBA_ROWS:
        write_image(folder / "img_align_celeba" / image_id)
    if style == "torchvision":
        lines = [str(len(CELEBA_ROWS)), " ".join(CELEBA_COLUMNS)]
        lines += [f"{image_id}  -1  {blond:2d}  {male:2d}   1" for image_id, blond, male, _ in CELEBA_ROWS]
        (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
        (folder / "list_eval_partition.txt").write_text(
            "".join(f"{image_id} {part}\n" for image_id, _, _, part in CELEBA_ROWS))
    else:  # Kaggle's CSV copy, read by PerceptionCLIP
        with open(folder / "list_attr_celeba.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["image_id", *CELEBA_COLUMNS])
            writer.writerows([image_id, -1, blond, male, 1] for image_id, blond, male, _ in CELEBA_ROWS)
        with open(folder / "list_eval_partition.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["image_id", "partition"])
            writer.writerows([image_id, part] for image_id, _, _, part in CELEBA_ROWS)
    return root


def test_waterbirds_splits_labels_and_groups(tmp_path):
    make_waterbirds(tmp_path)
    train = registry.load_dataset("waterbirds", "train", root=tmp_path)
    assert (train.name, train.split, len(train)) == ("waterbirds", "train", 4)
    assert train.classnames == ["landbird", "waterbird"] and train.templates == ["a photo of a {}."]
    assert train.labels.tolist() == [1, 1, 0, 0]
    assert train.attribute("place").tolist() == ["water", "land", "land", "water"]
    assert train.groups.tolist() == [3, 2, 0, 1]  # y * 2 + place, group DRO's numbering
    assert train.group_names == ["landbird / land", "landbird / water", "waterbird / land", "waterbird / water"]
    assert train.relative_paths[0] == "waterbird_complete95_forest2water2/001.Black_footed_Albatross/a.jpg"
    image, label = train[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and label == 1
    test = registry.load_dataset("waterbirds", "test", root=tmp_path)
    assert test.labels.tolist() == [0, 1] and test.groups.tolist() == [1, 2]
    assert test.fingerprint() != train.fingerprint()
    with pytest.raises(KeyError, match="has attribute 'place'"):
        train.attribute("background")


def test_celeba_torchvision_and_csv_layouts_agree(tmp_path):
    datasets = {style: registry.load_dataset("celeba", "test", root=make_celeba(tmp_path / style, style))
                for style in ("torchvision", "csv")}
    for ds in datasets.values():
        assert ds.relative_paths == ["celeba/img_align_celeba/000003.jpg", "celeba/img_align_celeba/000004.jpg",
                                     "celeba/img_align_celeba/000005.jpg"]
        assert ds.classnames == ["dark hair", "blond hair"]
        assert ds.labels.tolist() == [1, 0, 1]
        assert ds.attribute("gender").tolist() == ["male", "male", "female"]
        assert ds.groups.tolist() == [3, 1, 2]
        assert ds.templates == ["a photo of a celebrity with {}."]
        assert ds[0][0].mode == "RGB"
    assert datasets["torchvision"].fingerprint() == datasets["csv"].fingerprint()
    assert len(registry.load_dataset("celeba", "train", root=tmp_path / "csv")) == 2


def test_missing_data_names_the_path_and_where_to_get_it(tmp_path):
    with pytest.raises(registry.MissingDatasetError) as error:
        registry.load_dataset("waterbirds", "test", root=tmp_path)
    assert str(tmp_path / "waterbird_complete95_forest2water2") in str(error.value)
    assert groups.WATERBIRDS_URL in str(error.value)

    (tmp_path / "celeba" / "img_align_celeba").mkdir(parents=True)
    with pytest.raises(registry.MissingDatasetError) as error:
        registry.load_dataset("celeba", "test", root=tmp_path)
    assert str(tmp_path / "celeba" / "list_attr_celeba.txt") in str(error.value)
    assert "torchvision.datasets.CelebA" in str(error.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["celeba", "img_align_celeba"]  # nothing written


def test_missing_partition_list_and_images_opened_on_access(tmp_path):
    make_celeba(tmp_path)
    (tmp_path / "celeba" / "list_eval_partition.txt").unlink()
    with pytest.raises(registry.MissingDatasetError, match="list_eval_partition.txt"):
        registry.load_dataset("celeba", "val", root=tmp_path)
    make_waterbirds(tmp_path / "wb", images=False)
    ds = registry.load_dataset("waterbirds", "val", root=tmp_path / "wb")
    assert len(ds) == 2
    with pytest.raises(FileNotFoundError):
        ds[0]


def test_bad_metadata_and_unknown_split_are_refused(tmp_path):
    folder = tmp_path / "waterbird_complete95_forest2water2"
    folder.mkdir()
    (folder / "metadata.csv").write_text("img_filename,y,split\na.jpg,0,0\n")
    with pytest.raises(ValueError, match=r"missing columns \['place'\]"):
        registry.load_dataset("waterbirds", "train", root=tmp_path)
    with pytest.raises(ValueError, match="known splits: train, val, test"):
        registry.load_dataset("waterbirds", "training", root=tmp_path)


def test_group_datasets_are_registered():
    assert {"waterbirds", "celeba"} <= set(registry.known_datasets())
    assert registry.DATASETS["celeba"]["kind"] == "groups"
    assert registry.DATASETS["waterbirds"]["splits"] == ("train", "val", "test")
