import numpy as np
import pytest
from PIL import Image

from clipbook.data import packaged, registry


def write_image(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (6, 6), value).save(path)


def make_pans(root, train=(("nominal", 2), ("defective", 1)), test=(("nominal", 1), ("defective", 2))):
    base = root / "qe_genai" / "data" / "pan_images"
    for split, classes in (("train", train), ("test", test)):
        for folder, count in classes:
            for i in range(count):
                write_image(base / split / folder / f"IMG_{i:02d}.JPG", value=10 * i)
    return base


def test_textile_images_ship_with_their_package():
    ds = registry.load_dataset("textile_sts", "all")
    assert ds.classnames == ["nominal", "local", "global"]
    assert np.bincount(ds.labels).tolist() == [1000, 500, 500]
    assert ds.relative_paths[0] == "nominal/textile_0001.jpg" and ds.relative_paths[-1] == "global/textile_0500.jpg"
    image, label = ds[1500]
    assert image.mode == "RGB" and image.size == (250, 250) and label == 2
    fingerprint = ds.fingerprint()
    assert fingerprint["package"] == "conformal-clip-data" and fingerprint["version"] == "0.1.4"
    assert fingerprint["count"] == 2000 and len(fingerprint["files_sha256"]) == 64


def test_packaged_fingerprint_identifies_version_and_files(tmp_path):
    write_image(tmp_path / "nominal" / "a.jpg")
    common = dict(name="x", split="all", root=tmp_path, relative_paths=["nominal/a.jpg"], labels=[0],
                  classnames=["nominal"], template="{}")
    base = packaged.PackagedImageDataset(**common, distribution="pkg", version="1.0", file_sizes=[10]).fingerprint()
    assert base != packaged.PackagedImageDataset(**common, distribution="pkg", version="1.1",
                                                 file_sizes=[10]).fingerprint()
    assert base != packaged.PackagedImageDataset(**common, distribution="pkg", version="1.0",
                                                 file_sizes=[11]).fingerprint()


def test_packaged_dataset_refuses_unknown_splits_and_explains_a_missing_package(monkeypatch):
    with pytest.raises(ValueError, match="known splits: all"):
        registry.load_dataset("textile_sts", "test")
    config = {**registry.DATASETS["textile_sts"], "package": "clipbook_no_such_package"}
    monkeypatch.setitem(registry.DATASETS, "textile_sts", config)
    with pytest.raises(registry.MissingDatasetError, match="pip install conformal-clip-data"):
        registry.load_dataset("textile_sts", "all")


def test_image_folder_lists_class_folders_in_config_order(tmp_path):
    base = make_pans(tmp_path)
    (base / "train" / "nominal" / "notes.txt").write_text("not an image")
    train = registry.load_dataset("qe_genai_pan", "train", root=tmp_path)
    assert train.classnames == ["nominal", "defective"]
    assert train.relative_paths == ["qe_genai/data/pan_images/train/nominal/IMG_00.JPG",
                                    "qe_genai/data/pan_images/train/nominal/IMG_01.JPG",
                                    "qe_genai/data/pan_images/train/defective/IMG_00.JPG"]
    assert train.labels.tolist() == [0, 0, 1]
    test = registry.load_dataset("qe_genai_pan", "test", root=tmp_path)
    assert test.labels.tolist() == [0, 1, 1] and test[2][0].mode == "RGB"
    assert train.fingerprint() != test.fingerprint()


def test_image_folder_allows_an_absent_class_but_not_an_unknown_one(tmp_path):
    base = tmp_path / "qe_genai" / "data" / "pipe_staple"
    write_image(base / "train" / "good" / "0000.png")
    learn = registry.load_dataset("qe_genai_pipe_staple", "train", root=tmp_path)
    assert learn.classnames == ["good", "missing"] and learn.labels.tolist() == [0]
    write_image(base / "train" / "scratched" / "0000.png")
    with pytest.raises(ValueError, match="unexpected class folder.*scratched.*expected only: good, missing"):
        registry.load_dataset("qe_genai_pipe_staple", "train", root=tmp_path)


def test_missing_image_folder_says_where_to_get_it(tmp_path):
    with pytest.raises(registry.MissingDatasetError) as error:
        registry.load_dataset("qe_genai_extrusion", "all", root=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "qe_genai" / "data" / "extrusion_images") in message
    assert "github.com/fmegahed/qe_genai" in message and "normal, over, under" in message
    (tmp_path / "qe_genai" / "data" / "extrusion_images" / "normal").mkdir(parents=True)
    with pytest.raises(registry.MissingDatasetError, match="no images"):
        registry.load_dataset("qe_genai_extrusion", "all", root=tmp_path)


def test_registry_lists_the_folder_datasets():
    known = set(registry.known_datasets())
    assert {"textile_sts", "qe_genai_pan", "qe_genai_extrusion", "qe_genai_textile", "qe_genai_pipe_staple",
            "qe_genai_microstructure"} <= known
    assert registry.DATASETS["textile_sts"]["kind"] == "packaged"
    assert registry.DATASETS["qe_genai_microstructure"]["classes"][0] == "Uniform"
    assert len(registry.DATASETS["qe_genai_microstructure"]["classes"]) == 10


def test_office_domains_read_dassls_layout_and_say_where_to_get_them(tmp_path):
    from clipbook.data import fake_layouts

    assert len(registry.DATASETS["office31_amazon"]["classes"]) == 31
    assert len(registry.DATASETS["officehome_clipart"]["classes"]) == 65
    with pytest.raises(registry.MissingDatasetError) as error:
        registry.load_dataset("office31_webcam", "all", root=tmp_path)
    assert str(tmp_path / "office31" / "webcam") in str(error.value) and "opendatalab" in str(error.value)
    with pytest.raises(registry.MissingDatasetError, match="research and educational use only"):
        registry.load_dataset("officehome_art", "all", root=tmp_path)
    fake_layouts.write_layout("office31_amazon", tmp_path)
    amazon = registry.load_dataset("office31_amazon", "all", root=tmp_path)
    assert amazon.relative_paths[0].startswith("office31/amazon/back_pack/")
    assert amazon.labels.tolist() == sorted(amazon.labels.tolist()) and int(amazon.labels.max()) == 30
