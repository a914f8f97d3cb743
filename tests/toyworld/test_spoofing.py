import numpy as np
import pytest

from clipbook.toyworld import spoofing, splits, world


@pytest.fixture(scope="module")
def scenes():
    return splits.scenes("test")[:3]


def test_attack_dataset_labels_every_capture(scenes):
    data = spoofing.attack_dataset(scenes, seed=1)
    assert len(data) == 3 * (1 + len(spoofing.ATTACKS))
    assert data.attacks[:4].tolist() == ["live", "print", "replay", "frame"]
    assert data.labels.tolist() == [0 if a == "live" else 1 for a in data.attacks]
    assert data.classnames == ["live", "spoof"]


def test_live_capture_is_the_plain_render(scenes):
    data = spoofing.live_dataset(scenes)
    assert np.array_equal(data.render([0, 2]), world.render_batch([scenes[0], scenes[2]])[0])


def test_attacks_are_deterministic_and_change_the_image(scenes):
    data = spoofing.attack_dataset(scenes, seed=1)
    first, again = data.render(range(4)), data.render(range(4))
    assert np.array_equal(first, again)
    for capture in range(1, 4):
        assert np.abs(first[capture].astype(int) - first[0].astype(int)).mean() > 5, data.attacks[capture]
    assert not np.array_equal(first, spoofing.attack_dataset(scenes, seed=2).render(range(4)))


def test_getitem_matches_batch_render(scenes):
    data = spoofing.attack_dataset(scenes, seed=1)
    image, label = data[2]
    assert np.array_equal(np.asarray(image), data.render([2])[0]) and label == 1


def test_fingerprint_depends_on_attacks_and_seed(scenes):
    base = spoofing.attack_dataset(scenes, seed=1).fingerprint()
    assert base == spoofing.attack_dataset(scenes, seed=1).fingerprint()
    assert base != spoofing.attack_dataset(scenes, seed=2).fingerprint()
    assert base != spoofing.attack_dataset(scenes, attacks=("print",), seed=1).fingerprint()


def test_bad_input_is_named(scenes):
    with pytest.raises(KeyError, match="unknown attack"):
        spoofing.SpoofDataset(scenes, ["live", "mask", "live"])
    with pytest.raises(ValueError, match="one attack per scene"):
        spoofing.SpoofDataset(scenes, ["live"])
    with pytest.raises(ValueError, match="uint8"):
        spoofing.spoof(np.zeros((4, 4, 3)), "print")
