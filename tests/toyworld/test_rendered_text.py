import numpy as np
import pytest
from clipbook.toyworld import rendered_text as rt
from clipbook.toyworld.world import IMAGE_SIZE


def test_names_are_distinct_deterministic_and_come_in_near_duplicate_families():
    names = rt.firm_names(40, seed=3)
    assert len(set(names)) == 40 and names == rt.firm_names(40, seed=3) and names != rt.firm_names(40, seed=4)
    first, sibling = names[0], names[1]
    assert first.split(" ")[1] == sibling.split(" ")[1]  # same trade word
    assert rt.levenshtein(first, sibling) <= 3  # one syllable apart


def test_ocr_noise_rate_zero_is_identity_and_the_error_rate_grows_with_the_rate():
    text = "kanemori shoji"
    assert rt.ocr_noise(text, 0.0, np.random.default_rng(0)) == text
    names = rt.firm_names(200, seed=0)
    cer = {rate: np.mean([rt.character_error_rate(n, rt.ocr_noise(n, rate, np.random.default_rng(i)))
                          for i, n in enumerate(names)]) for rate in (0.02, 0.12)}
    assert 0.005 < cer[0.02] < 0.05 and 0.06 < cer[0.12] < 0.25
    with pytest.raises(ValueError, match="error rate"):
        rt.ocr_noise(text, 1.5, np.random.default_rng(0))


def test_levenshtein_matches_known_distances():
    assert rt.levenshtein("kitten", "sitting") == 3
    assert rt.levenshtein("", "abc") == 3 and rt.levenshtein("abc", "abc") == 0


def test_records_are_deterministic_rendered_and_ink_differs_between_names():
    names = rt.firm_names(6, seed=1)
    a = rt.record_set(names, 2, {"clean": 0.02, "noisy": 0.12}, seed=5)
    b = rt.record_set(names, 2, {"clean": 0.02, "noisy": 0.12}, seed=5)
    assert a.images.shape == (12, IMAGE_SIZE, IMAGE_SIZE, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and a.ocr == b.ocr
    assert a.entities.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5] and a.copies.tolist() == [0, 1] * 6
    assert not np.array_equal(a.images[0], a.images[1])  # two copies are two renderings
    # a subset of names renders the same records (everything keyed by seed, entity id and copy)
    sub = rt.record_set(names[2:4], 2, {"clean": 0.02, "noisy": 0.12}, seed=5, entity_ids=[2, 3])
    assert np.array_equal(sub.images, a.images[4:8]) and sub.ocr["noisy"] == a.ocr["noisy"][4:8]
    picked = a.subset(a.copies == 1)
    assert len(picked) == 6 and picked.texts == names


def test_render_draws_text_on_a_page():
    image = rt.render_name("kanemori shoji", rt.seeded_rng("t", 0), rt.RenderNoise(speckle=0.0, blur=(0.0, 0.0)))
    grey = image.mean(-1)
    # ink pixels exist and sit away from the page tone; an empty name gives a blank page
    assert (np.abs(grey - np.median(grey)) > 40).sum() > 30
    blank = rt.render_name(" ", rt.seeded_rng("t", 0), rt.RenderNoise(speckle=0.0, blur=(0.0, 0.0)))
    assert np.ptp(blank.mean(-1)) < 5
