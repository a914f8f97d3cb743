import csv

import pytest

from clipbook.data import fake_layouts, mmvp, registry


def test_the_generated_layout_reads_back_pair_by_pair(tmp_path):
    fake_layouts.write_layout("mmvp_vlm", tmp_path)
    dataset = registry.load_dataset("mmvp_vlm", "test", root=tmp_path)
    assert len(dataset) == 2 * len(mmvp.PATTERNS)
    assert dataset.relative_paths[:2] == ["MMVP_VLM/MLLM_VLM Images/Orientation and Direction/1.jpg",
                                          "MMVP_VLM/MLLM_VLM Images/Orientation and Direction/2.jpg"]
    first, second = dataset.statement_pairs()
    assert len(first) == len(second) == len(mmvp.PATTERNS)
    assert first[0] == "a photo of one way of orientation and direction"  # evaluate_vlm.py's prefix
    assert second[0] == "a photo of the other way of orientation and direction"
    assert dataset.pair_categories() == mmvp.PATTERNS
    image, label = dataset[1]
    assert image.mode == "RGB" and label == 0
    assert "statements_sha256" in dataset.fingerprint()


def test_missing_data_names_the_file_and_the_source(tmp_path):
    with pytest.raises(registry.MissingDatasetError, match="Questions.csv.*MMVP/MMVP_VLM"):
        registry.load_dataset("mmvp_vlm", "test", root=tmp_path)


def test_rows_that_are_not_a_pair_are_an_error(tmp_path):
    fake_layouts.write_layout("mmvp_vlm", tmp_path)
    questions = tmp_path / "MMVP_VLM" / "Questions.csv"
    rows = list(csv.reader(open(questions)))
    rows[1][0], rows[2][0] = rows[2][0], rows[1][0]  # the even id first
    with open(questions, "w", newline="") as file:
        csv.writer(file).writerows(rows)
    with pytest.raises(ValueError, match="are not a pair"):
        registry.load_dataset("mmvp_vlm", "test", root=tmp_path)


def test_a_missing_image_is_named(tmp_path):
    fake_layouts.write_layout("mmvp_vlm", tmp_path)
    (tmp_path / "MMVP_VLM" / "MLLM_VLM Images" / "Texts" / "16.jpg").unlink()
    with pytest.raises(registry.MissingDatasetError, match="16.jpg is missing"):
        registry.load_dataset("mmvp_vlm", "test", root=tmp_path)
