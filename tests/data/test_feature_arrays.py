import numpy as np
import pytest

from clipbook.data import fake_layouts
from clipbook.data.registry import MissingDatasetError, load_dataset


@pytest.mark.parametrize("name", ["deltaedit-celeba", "deltaedit-cocoval"])
def test_fake_layout_loads_in_the_repository_layout(tmp_path, name):
    folder = fake_layouts.write_layout(name, tmp_path)
    subset = name.split("-")[1]
    assert folder == tmp_path / "DeltaEdit" / "tSNE" / subset
    assert (folder / f"cspace_{subset}_deltai.npy").is_file()
    arrays = load_dataset(name, "test", root=tmp_path)
    assert arrays.i.shape == arrays.t.shape == arrays.deltai.shape == arrays.deltat.shape
    assert arrays.i.shape[1] == 512 and arrays.i.dtype == np.float32
    assert len(arrays) == arrays.i.shape[0]
    assert set(arrays.fingerprint()["sha256"]) == {"i", "t", "deltai", "deltat"}
    with pytest.raises(AttributeError, match="has no array 'x'"):
        arrays.x


def test_missing_files_name_the_path_and_the_source(tmp_path):
    with pytest.raises(MissingDatasetError, match=r"deltaedit-celeba .*cspace_celeba_i\.npy.*git clone"):
        load_dataset("deltaedit-celeba", "test", root=tmp_path)
    with pytest.raises(KeyError, match="one split, 'test'"):
        load_dataset("deltaedit-celeba", "train", root=tmp_path)


def test_an_lfs_pointer_or_bad_shape_is_reported(tmp_path):
    folder = fake_layouts.write_layout("deltaedit-cocoval", tmp_path)
    (folder / "cspace_cocoval_t.npy").write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(MissingDatasetError, match="not a .npy array"):
        load_dataset("deltaedit-cocoval", "test", root=tmp_path)
    np.save(folder / "cspace_cocoval_t.npy", np.zeros((5, 3), np.float32))
    with pytest.raises(MissingDatasetError, match="expected"):
        load_dataset("deltaedit-cocoval", "test", root=tmp_path)
