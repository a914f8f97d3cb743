import numpy as np
import pytest
from clipbook.batch.parameters import Dataset, ListOf
from clipbook.data import registry
from clipbook.dense import benchmarks


@pytest.fixture(autouse=True)
def _small_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPBOOK_CACHE", str(tmp_path))
    for spec in benchmarks.OVSS_BENCHMARKS.values():
        monkeypatch.setitem(spec, "images", 5)


def test_every_toy_benchmark_is_a_registry_dataset_with_its_splits():
    for name in benchmarks.OVSS_BENCHMARKS:
        assert registry.DATASETS[name]["kind"] == "toy-ovss"
        assert set(registry.DATASETS[name]["splits"]) == {"train", "val", "test"}


def test_it_yields_the_benchmark_images_and_label_maps():
    dataset = registry.load_dataset("toy-context", "val")
    stored = benchmarks.load_segmentation("toy-context", "val")
    image, label = dataset[3]
    assert np.array_equal(np.asarray(image), stored.images[3]) and np.array_equal(label, stored.labels[3])
    assert dataset.classnames == benchmarks.classnames("toy-context") and len(dataset) == 5
    assert dataset.fingerprint() != registry.load_dataset("toy-context", "test").fingerprint()


def test_the_dataset_parameter_accepts_toy_benchmarks_and_refuses_unknown_ones():
    spec = ListOf(Dataset())
    spec.check("datasets", ["toy-voc21", "voc21"])
    with pytest.raises(Exception, match="toy-voc99"):
        spec.check("datasets", ["toy-voc99"])


def test_an_unknown_split_is_refused_before_rendering():
    with pytest.raises(KeyError, match="not 'training'"):
        registry.load_dataset("toy-voc20", "training")
