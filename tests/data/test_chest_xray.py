import csv

import numpy as np
import pytest
from clipbook.data import chest_xray, fake_layouts, registry
from clipbook.toyworld import medical
from PIL import Image


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8)).save(path)


def make_cxr14(root, neatx=True):
    folder = root / "CXR14"
    entries = [("a.png", "Pneumothorax", 30, "M"), ("b.png", "No Finding", 85, "F"),
               ("c.png", "Effusion|Pneumothorax", 17, "F"), ("d.png", "Atelectasis", 60, "M"),
               ("e.png", "Pneumothorax", 70, "M")]  # e is not a test image
    for image_id, *_ in entries:
        _image(folder / "imgs" / image_id)
    with open(folder / "Data_Entry_2017.csv", "w", newline="") as file:
        csv.writer(file).writerows([["Image Index", "Finding Labels", "Follow-up #", "Patient Age", "Patient Gender"],
                                    *[(i, f, 0, a, s) for i, f, a, s in entries]])
    (folder / "test_list.txt").write_text("a.png\nb.png\nc.png\nd.png\n")
    if neatx:
        with open(folder / "NIH-CX14_TubeAnnotations_NonExperts_aggregated.csv", "w", newline="") as file:
            csv.writer(file).writerows([["Image Index", "Drain"], ["a.png", 1], ["b.png", 0], ["e.png", 1]])
    return root


def test_cxr14_reads_the_official_test_images_labels_drains_and_subgroups(tmp_path):
    data = registry.load_dataset("cxr14-neatx", "test", root=make_cxr14(tmp_path))
    assert len(data) == 4
    assert data.labels.tolist() == [1, 0, 1, 0]
    assert data.attribute("drain").tolist() == [1, 0, -1, -1]  # unannotated by NEATX: unknown
    assert data.attribute("sex").tolist() == ["male", "female", "female", "male"]
    assert data.attribute("age_group").tolist() == ["25-50", "80+", "under 18", "50-65"]
    assert data.classnames == [medical.NO_FINDING, medical.FINDING]
    image, label = data[0]
    assert image.mode == "RGB" and label == 1
    assert data.subgroup_attributes == ["sex", "age_group"]


def test_missing_files_name_the_file_and_where_to_get_it(tmp_path):
    with pytest.raises(registry.MissingDatasetError, match="zenodo.org/records/14944064"):
        registry.load_dataset("cxr14-neatx", "test", root=make_cxr14(tmp_path, neatx=False))
    with pytest.raises(registry.MissingDatasetError, match="credentialed.*PhysioNet"):
        registry.load_dataset("mimic-cxr", "test", root=tmp_path)
    with pytest.raises(ValueError, match="test images only"):
        registry.load_dataset("cxr14-neatx", "train", root=tmp_path)


def test_mimic_reads_the_official_csv(tmp_path):
    folder = tmp_path / "MIMIC"
    rows = [("files/p1/a.jpg", "report", "Female", "White", 22, 1), ("files/p2/b.jpg", "", "Male", "Black", 70, 0),
            ("files/p3/c.jpg", "report", "Male", "Asian", 90, "")]
    for row in rows:
        _image(folder / row[0])
    with open(folder / "test_preproc_filtered.csv", "w", newline="") as file:
        csv.writer(file).writerows([["path_preproc", "findings", "sex", "race", "age", "Pneumothorax"], *rows])
    data = registry.load_dataset("mimic-cxr", "test", root=tmp_path)
    assert len(data) == 2  # rows without a report are dropped, as evaluate_performance.py does
    assert data.labels.tolist() == [1, 0]  # a missing label is 0
    assert data.attribute("race").tolist() == ["White", "Asian"]
    assert data.marker_attribute is None
    with pytest.raises(KeyError, match="not 'drain'"):
        data.attribute("drain")


@pytest.mark.parametrize("name", ["cxr14-neatx", "mimic-cxr"])
def test_the_generated_layouts_load_and_hold_every_subset(name, tmp_path):
    fake_layouts.write_layout(name, tmp_path)
    data = registry.load_dataset(name, "test", root=tmp_path)
    assert 0 < data.labels.sum() < len(data)
    if name == "cxr14-neatx":
        drain = data.attribute("drain")
        assert {0, 1} <= set(drain[data.labels == 1].tolist())


def test_the_toy_counterpart_is_registered():
    data = registry.load_dataset("toy-cxr", "test")
    assert isinstance(data, medical.RadiographDataset) and len(data) == 2000
    assert registry.DATASETS["toy-cxr"]["marker_attribute"] in medical.ATTRIBUTES
    assert abs(data.labels.mean() - 0.1) < 0.03


def test_age_bins_follow_the_official_cut():
    assert [chest_xray.age_group(a) for a in (17, 18, 24.9, 25, 65, 80, 101)] == \
           ["under 18", "18-25", "18-25", "25-50", "65-80", "80+", "80+"]
    assert np.array_equal(medical.AGE_GROUPS, ("18-25", "25-50", "50-65", "65-80", "80+"))
