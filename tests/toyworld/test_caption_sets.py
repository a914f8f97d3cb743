import numpy as np
import pytest
from clipbook.toyworld import caption_sets, splits


@pytest.fixture(scope="module")
def scenes():
    return splits.scenes("pets-test")[:6]


@pytest.mark.parametrize("style", caption_sets.STYLES)
def test_every_image_gets_its_captions_in_order(scenes, style):
    texts, owner = caption_sets.captions(scenes, style, per_image=4)
    assert len(texts) == 24 and owner.tolist() == np.repeat(np.arange(6), 4).tolist()
    again, again_owner = caption_sets.captions(scenes, style, per_image=4)
    assert again == texts and np.array_equal(again_owner, owner)


def test_short_captions_differ_within_an_image_and_name_its_class(scenes):
    texts, owner = caption_sets.captions(scenes, "short", per_image=5)
    for index, scene in enumerate(scenes):
        mine = [t for t, o in zip(texts, owner) if o == index]
        assert len(set(mine)) >= 3
        assert sum(scene.classname in t.lower() for t in mine) >= 3


def test_the_seed_changes_the_wording_of_long_captions_only(scenes):
    first, _ = caption_sets.captions(scenes, "long", per_image=2, seed=0)
    second, _ = caption_sets.captions(scenes, "long", per_image=2, seed=1)
    assert first != second
    for index, (a, b) in enumerate(zip(first, second)):
        scene = scenes[index // 2]
        article = "an" if scene.classname[0] in "aeiou" else "a"
        for fact in (f"colour is {scene.colour}", f"It is {article} {scene.classname}", f"looks {scene.size}"):
            assert fact in a and fact in b


def test_other_languages_and_bad_arguments(scenes):
    texts, _ = caption_sets.captions(scenes, "short", per_image=3, language="toy-ro")
    assert len(texts) == 18 and all(t.endswith(".") for t in texts)
    with pytest.raises(ValueError, match="style 'short' only"):
        caption_sets.captions(scenes, "long", language="toy-ag")
    with pytest.raises(ValueError, match="unknown caption style"):
        caption_sets.captions(scenes, "poem")
    with pytest.raises(ValueError, match="unknown language"):
        caption_sets.captions(scenes, language="fr")
    with pytest.raises(ValueError, match="positive int"):
        caption_sets.captions(scenes, per_image=0)


def test_detailed_captions_describe_their_own_scene():
    scenes = splits.scenes("scenes-test")[:40]
    texts, owner = caption_sets.captions(scenes, "detailed", per_image=3, seed=1)
    for text, index in zip(texts, owner):
        scene = scenes[index]
        assert text.startswith("A photo of") and scene.classname in text.lower()
    # descriptions, unlike the short captions, tell most images apart
    first = [texts[3 * i] for i in range(len(scenes))]
    assert len(set(first)) >= 0.9 * len(scenes)
    short, _ = caption_sets.captions(scenes, "short", per_image=1)
    assert len(set(first)) > len(set(short))
