import numpy as np
import pytest
from PIL import Image

from clipbook.data import registry


def test_toy_dataset_yields_images_labels_masks_and_captions():
    ds = registry.load_dataset("toy", "val")
    image, label = ds[0]
    assert isinstance(image, Image.Image) and image.size == (64, 64) and label == ds.labels[0]
    assert ds.mask(0).dtype == bool and len(ds.captions("short")) == len(ds)
    assert set(ds.attribute("domain")) == {"photo"}
    assert ds.fingerprint()["split"] == "val"


def test_unknown_dataset_and_split_are_refused_with_known_values():
    with pytest.raises(registry.UnknownDatasetError, match="known datasets: .*toy"):
        registry.load_dataset("imagenot", "test")
    with pytest.raises(KeyError, match="known splits"):
        registry.load_dataset("toy", "tset")


def test_fingerprints_differ_between_splits():
    assert registry.load_dataset("toy", "val").fingerprint() != registry.load_dataset("toy", "test").fingerprint()
    assert np.array_equal(registry.load_dataset("toy", "val").labels, registry.load_dataset("toy", "val").labels)
