import pytest

from clipbook.data import cue_conflict, fake_layouts, registry
from clipbook.data.fake_layouts import LayoutSize


def test_the_generated_layout_reads_back_with_shape_and_texture_labels(tmp_path):
    fake_layouts.write_layout("cue-conflict", tmp_path, LayoutSize(images_per_class={"test": 2}))
    dataset = registry.load_dataset("cue-conflict", "test", root=tmp_path)
    assert len(dataset) == 32 and dataset.classnames == cue_conflict.CATEGORIES
    assert (dataset.labels != dataset.cue_labels).all()
    first = dataset.relative_paths[0]
    assert first == "cue-conflict/airplane/airplane1-bear1.png"
    assert dataset.labels[0] == 0 and dataset.cue_labels[0] == cue_conflict.CATEGORIES.index("bear")
    image, label = dataset[0]
    assert image.mode == "RGB" and label == 0
    assert "cue_sha256" in dataset.fingerprint()


def test_missing_data_names_the_folder_and_the_source(tmp_path):
    with pytest.raises(registry.MissingDatasetError, match="model-vs-human"):
        registry.load_dataset("cue-conflict", "test", root=tmp_path)
    (tmp_path / "cue-conflict" / "airplane").mkdir(parents=True)
    with pytest.raises(registry.MissingDatasetError, match="category folder .*bear is missing"):
        registry.load_dataset("cue-conflict", "test", root=tmp_path)


def test_only_a_test_split(tmp_path):
    with pytest.raises(KeyError, match="has splits test"):
        registry.load_dataset("cue-conflict", "train", root=tmp_path)


def test_a_file_in_the_wrong_folder_is_an_error(tmp_path):
    fake_layouts.write_layout("cue-conflict", tmp_path, LayoutSize(images_per_class={"test": 1}))
    (tmp_path / "cue-conflict" / "bear" / "cat1-dog1.png").write_bytes(b"")
    with pytest.raises(ValueError, match="does not name a shape of its folder"):
        registry.load_dataset("cue-conflict", "test", root=tmp_path)
