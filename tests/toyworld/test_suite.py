import re

import pytest

from clipbook.data import registry
from clipbook.toyworld import splits, suite, world


def test_the_suite_has_eight_datasets_of_at_least_ten_classes_and_a_hundred_classes_in_all():
    assert len(world.CLASSES) >= 100
    assert len(suite.SUITE) == 8
    assert sorted(spec["family"] for spec in suite.SUITE.values()) == sorted(world.FAMILIES)
    for name, spec in suite.SUITE.items():
        assert len(world.FAMILY_CLASSES[spec["family"]]) >= 10, name


def test_class_names_are_unique_across_the_suite_and_plain_words():
    names = [c for spec in suite.SUITE.values() for c in world.FAMILY_CLASSES[spec["family"]]]
    assert len(names) == len(set(names)) == len(world.CLASSES)
    assert all(re.fullmatch(r"[a-z0-9]+(?:[ -][a-z0-9]+)*", name) for name in names)  # lower case, as prompts use them
    # no class name is a whole word of another's: a caption that names one never names two
    for a in names:
        assert not [b for b in names if b != a and re.search(rf"\b{re.escape(a)}\b", b)], a


def test_every_suite_dataset_has_a_counterpart_template_and_a_pretraining_share():
    for name, spec in suite.SUITE.items():
        assert spec["template"].count("{}") == 1 and spec["counterpart"] and spec["title"], name
    assert set(suite.PRETRAIN_MIX) == set(world.FAMILIES)
    assert abs(sum(mix["share"] for mix in suite.PRETRAIN_MIX.values()) - 1) < 1e-9
    assert all(0 < mix["name_rate"] <= 1 for mix in suite.PRETRAIN_MIX.values())
    for mix in suite.PRETRAIN_MIX.values():
        assert set(mix.get("domains", {})) <= set(world.DOMAINS)
    assert set(suite.SHIFTS) == {"toy-sketch", "toy-noise", "toy-v2", "toy-a", "toy-r"}


@pytest.mark.parametrize("name", list(suite.SUITE) + list(suite.SHIFTS))
def test_every_suite_dataset_loads_from_the_registry_with_its_family_and_template(name):
    family = suite.SUITE.get(name, {"family": "objects"})["family"]
    template = suite.SUITE.get(name, suite.SUITE["toy"])["template"]
    test = registry.load_dataset(name, "test")
    assert test.classnames == world.FAMILY_CLASSES[family]
    assert test.templates == [template]
    assert len(test) > 0 and set(test.labels.tolist()) == set(range(len(test.classnames)))
    assert test.fingerprint() == {"dataset": "toy", **splits.fingerprint(test.split)}
    image, label = test[0]
    assert image.size == (world.IMAGE_SIZE, world.IMAGE_SIZE) and label == test.labels[0]
