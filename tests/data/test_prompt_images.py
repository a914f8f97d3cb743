"""Prompt-image sets (the SCE paper's generated sets): layout, pairing order and clear errors."""
import pytest

from clipbook.data import fake_layouts, prompt_images
from clipbook.data.registry import MissingDatasetError, load_dataset

NAME = "sce-animals-objects-sdxl"


def test_missing_set_names_itself_and_where_to_get_it(tmp_path):
    with pytest.raises(MissingDatasetError, match=r"sce-animals-objects-sdxl .*not found.*\n.*aziksh/animals_with_objects_sdxl"):
        load_dataset(NAME, "all", root=tmp_path)


def test_fake_layout_reads_back_paired_in_natural_order(tmp_path):
    fake_layouts.write_layout(NAME, tmp_path)
    images = load_dataset(NAME, "all", root=tmp_path)
    assert len(images) == len(images.prompts) > 10
    assert images.relative_paths[:3] == ["images/0.png", "images/1.png", "images/2.png"]
    assert images.relative_paths[10] == "images/10.png"  # not after 1.png
    assert images[0][0].mode == "RGB"
    assert [images.classnames[label] for label in images.labels] == images.prompts
    assert len(images.classnames) < len(images.prompts)  # some prompts repeat
    assert images.fingerprint()["prompts_sha256"]


def test_count_mismatch_is_an_error(tmp_path):
    folder = fake_layouts.write_layout(NAME, tmp_path)
    (folder / prompt_images.PROMPTS_FILE).write_text("only one prompt\n")
    with pytest.raises(ValueError, match="images in .* but 1 prompts"):
        load_dataset(NAME, "all", root=tmp_path)


def test_natural_key():
    assert sorted(["10.png", "2.png", "1.png"], key=prompt_images.natural_key) == ["1.png", "2.png", "10.png"]
