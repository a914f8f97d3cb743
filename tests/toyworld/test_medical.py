from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from clipbook.toyworld import medical
from clipbook.toyworld.medical import Radiograph, RadiographDataset, cohort_dataset, render, sample_cohort


def _radiograph(**overrides):
    base = dict(finding=0, marker=0, sex="male", age_group="25-50", side="left", noise_seed=3)
    return Radiograph(**{**base, **overrides})


def test_a_cohort_is_a_pure_function_of_its_arguments():
    a, b = sample_cohort(50, 4), sample_cohort(50, 4)
    assert a == b
    assert sample_cohort(50, 5) != a
    assert np.array_equal(medical.render_batch(a[:5]), medical.render_batch(b[:5]))


def test_the_marker_follows_the_finding_at_the_configured_rates():
    cohort = sample_cohort(20000, 0, prevalence=0.3, marker_given_finding=0.8, marker_given_no_finding=0.1)
    finding = np.array([r.finding for r in cohort])
    marker = np.array([r.marker for r in cohort])
    assert abs(finding.mean() - 0.3) < 0.015
    assert abs(marker[finding == 1].mean() - 0.8) < 0.02
    assert abs(marker[finding == 0].mean() - 0.1) < 0.01


def test_subgroups_are_independent_of_the_finding():
    cohort = sample_cohort(20000, 1, prevalence=0.5, female_fraction=0.3)
    finding = np.array([r.finding for r in cohort])
    female = np.array([r.sex == "female" for r in cohort])
    assert abs(female.mean() - 0.3) < 0.015
    assert abs(female[finding == 1].mean() - female[finding == 0].mean()) < 0.03
    ages = np.array([medical.AGE_GROUPS.index(r.age_group) for r in cohort])
    assert abs(np.bincount(ages, minlength=5) / len(ages) - np.array(medical.AGE_WEIGHTS)).max() < 0.015


def test_one_rate_does_not_shift_the_other_attributes():
    weak = sample_cohort(200, 7, marker_given_finding=0.1)
    strong = sample_cohort(200, 7, marker_given_finding=0.9)
    assert [(r.finding, r.sex, r.age_group, r.noise_seed) for r in weak] == \
           [(r.finding, r.sex, r.age_group, r.noise_seed) for r in strong]


def test_render_is_grayscale_rgb_uint8_of_the_toy_world_size():
    image = render(_radiograph())
    assert image.shape == (medical.IMAGE_SIZE, medical.IMAGE_SIZE, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])


def test_the_drain_is_a_thin_bright_line_on_its_side_only():
    without = render(_radiograph(side="left")).astype(int)[..., 0]
    with_drain = render(_radiograph(side="left", marker=1)).astype(int)[..., 0]
    changed = with_drain != without
    assert 40 < changed.sum() < 400  # a tube about one pixel wide, not a region
    columns = np.nonzero(changed)[1]
    assert columns.min() > medical.IMAGE_SIZE // 2  # the patient's left is the image's right
    assert with_drain[changed].mean() > 200


def test_the_finding_changes_only_its_lung_and_is_subtle():
    healthy = render(_radiograph(side="right")).astype(int)[..., 0]
    sick = render(_radiograph(side="right", finding=1)).astype(int)[..., 0]
    changed = sick != healthy
    assert changed.sum() > 30
    assert np.nonzero(changed)[1].max() < medical.IMAGE_SIZE // 2  # the patient's right: the image's left
    assert np.abs(sick - healthy)[changed].mean() < 40  # a few grey levels, unlike the drain


def test_subgroups_change_the_anatomy():
    base = render(_radiograph()).astype(int)
    assert np.abs(render(_radiograph(sex="female")).astype(int) - base).mean() > 2
    assert np.abs(render(_radiograph(age_group="80+")).astype(int) - base).mean() > 2


def test_invalid_radiographs_and_rates_are_rejected():
    with pytest.raises(ValueError, match="unknown sex"):
        _radiograph(sex="other")
    with pytest.raises(ValueError, match="unknown age_group"):
        _radiograph(age_group="90+")
    with pytest.raises(ValueError, match="0 or 1"):
        _radiograph(finding=2)
    with pytest.raises(ValueError, match="marker_given_finding"):
        sample_cohort(5, 0, marker_given_finding=1.5)
    with pytest.raises(ValueError, match="age_weights"):
        sample_cohort(5, 0, age_weights=(1, 1))
    with pytest.raises(TypeError, match="seed"):
        sample_cohort(5, "0")


def test_the_dataset_serves_images_labels_and_attributes():
    data = cohort_dataset("test", n=40, seed=2, prevalence=0.5, marker_given_finding=0.9)
    image, label = data[3]
    assert isinstance(image, Image.Image) and image.size == (medical.IMAGE_SIZE, medical.IMAGE_SIZE)
    assert label == data.radiographs[3].finding
    assert np.array_equal(np.asarray(image), data.render([3])[0])
    assert np.array_equal(data.labels, data.attribute("finding"))
    assert set(data.attribute("sex")) <= set(medical.SEXES)
    assert data.attribute("marker").dtype == np.int64
    assert data.classnames == [medical.NO_FINDING, medical.FINDING]
    with pytest.raises(KeyError, match="unknown attribute"):
        data.attribute("race")
    loader = torch.utils.data.DataLoader(data, batch_size=8, collate_fn=list)
    assert sum(len(batch) for batch in loader) == 40


def test_the_fingerprint_follows_the_content():
    a = cohort_dataset("test", n=20, seed=2)
    assert a.fingerprint() == cohort_dataset("test", n=20, seed=2).fingerprint()
    assert a.fingerprint() != cohort_dataset("test", n=20, seed=2, marker_given_finding=0.2).fingerprint()
    assert a.fingerprint()["medical_version"] == medical.MEDICAL_VERSION
    flipped = RadiographDataset([replace(r, marker=1 - r.marker) for r in a.radiographs])
    assert flipped.fingerprint() != RadiographDataset(a.radiographs).fingerprint()
    assert a.subset([0, 1]).fingerprint() == RadiographDataset(a.radiographs[:2]).fingerprint()


def test_the_binary_prompts_are_the_papers():
    assert medical.binary_prompts() == ["Chest Pneumothorax", "Chest No findings"]


def test_features_of_the_dataset_are_cached_by_the_library(random_tiny_clip, cache_root):
    from clipbook.features import image_features

    data = cohort_dataset("test", n=12, seed=0)
    features = image_features(random_tiny_clip, data, batch_size=5)
    assert features.shape[0] == 12
    again = image_features(random_tiny_clip, cohort_dataset("test", n=12, seed=0), batch_size=5)
    assert torch.equal(features, again)
    # the batched rendering path (no PIL, no transform) gives the same features as the per-image one
    direct = torch.stack([random_tiny_clip.preprocess(data[i][0]) for i in range(12)])
    with torch.no_grad():
        encoded = torch.nn.functional.normalize(random_tiny_clip.model.encode_image(direct).float(), dim=-1)
    assert torch.allclose(features, encoded, atol=1e-4)
