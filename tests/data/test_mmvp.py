import csv

import numpy as np
import pytest
import torch
from clipbook.data import mmvp
from clipbook.data.fake_layouts import LayoutSize, write_layout
from clipbook.data.registry import MissingDatasetError, load_dataset


def test_pairs_statements_and_categories_follow_mmvps_script(tmp_path):
    write_layout("mmvp_vlm", tmp_path, LayoutSize(images_per_class={"test": 9}))  # 18 pairs: past the first block
    dataset = load_dataset("mmvp_vlm", "test", root=tmp_path)
    assert len(dataset.pairs) == 18 and len(dataset) == 36
    first, second = dataset.statements()
    assert first[0] == "a photo of the dog is facing left (0)" and second[0] == "a photo of the dog is facing right (0)"
    categories = dataset.categories()
    assert list(categories[:15]) == [mmvp.CATEGORIES[0]] * 15 and categories[15] == mmvp.CATEGORIES[1]
    # images in pair order: question ids 1, 2 form pair 0, under the first question's type folder
    assert dataset.paths[0].name == "1.jpg" and dataset.paths[1].name == "2.jpg"
    assert dataset.paths[2].parent.name == dataset.pairs[1]["type"]
    image, label = dataset[1]
    assert image.mode == "RGB" and label == 1


def test_image_features_split_pairs_into_first_and_second_images(tmp_path):
    write_layout("mmvp_vlm", tmp_path, LayoutSize(images_per_class={"test": 1}))
    dataset = load_dataset("mmvp_vlm", "test", root=tmp_path)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def encode_image(self, x):
            return x.flatten(1)[:, :4] * self.w

    class Loaded:
        model = Model()

        @staticmethod
        def preprocess(image):
            return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1)

    a, b = dataset.image_features(Loaded)
    assert a.shape == b.shape == (2, 4)
    assert torch.equal(a[1], Loaded.preprocess(dataset[2][0]).flatten()[:4])
    assert torch.equal(b[0], Loaded.preprocess(dataset[1][0]).flatten()[:4])


def test_missing_data_names_the_file_and_where_to_get_it(tmp_path):
    with pytest.raises(MissingDatasetError, match="Questions.csv.*\n.*MMVP/MMVP_VLM"):
        load_dataset("mmvp_vlm", "test", root=tmp_path)
    write_layout("mmvp_vlm", tmp_path, LayoutSize(images_per_class={"test": 1}))
    (tmp_path / "mmvp_vlm" / mmvp.IMAGE_DIR / mmvp.CATEGORIES[0] / "2.jpg").unlink()
    with pytest.raises(MissingDatasetError, match="2.jpg"):
        load_dataset("mmvp_vlm", "test", root=tmp_path)


def test_a_pair_must_start_at_an_odd_question_id(tmp_path):
    write_layout("mmvp_vlm", tmp_path, LayoutSize(images_per_class={"test": 1}))
    path = tmp_path / "mmvp_vlm" / "Questions.csv"
    rows = list(csv.reader(open(path, newline="")))
    rows = [rows[0]] + rows[2:]  # drop question 1: pairs now start at even ids
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows[:-1])
    with pytest.raises(ValueError, match="odd question id"):
        load_dataset("mmvp_vlm", "test", root=tmp_path)
