import pytest
from clipbook.toyworld import languages, splits, suite, world

OTHERS = [code for code in languages.LANGUAGES if code != "en"]


@pytest.mark.parametrize("language", OTHERS)
def test_the_lexicon_is_one_to_one_and_keeps_only_model_codes(language):
    table = languages.lexicon(language)
    assert len(set(table.values())) == len(table)
    kept = [word for word, stem in table.items() if word == stem]
    assert kept and all(languages.LOANWORD.search(word) for word in kept)


@pytest.mark.parametrize("language", OTHERS)
def test_captions_use_no_english_content_word(language):
    english = {w for name in world.CLASSES for w in name.split(" ") if not languages.LOANWORD.search(w)}
    english |= set(world.COLOURS) | set(world.SIZES) | {"photo", "background"}
    for scene in splits.scenes("test")[:10] + splits.scenes("food-test")[:10]:
        words = set(languages.caption(scene, "medium", language).lower().rstrip(".").split(" "))
        assert not words & english, words & english


def test_word_order_differs_from_english():
    scene = next(s for s in splits.scenes("test") if s.size == "large")
    colour_ro = languages.translate_words(scene.colour, "toy-ro")[0]
    noun_ro = languages.translate_words(scene.classname, "toy-ro")[0]
    ro = languages.caption(scene, "short", "toy-ro").lower()
    assert ro.index(noun_ro) < ro.index(colour_ro)  # English: colour before the noun
    ag = languages.caption(scene, "medium", "toy-ag").lower()
    noun_ag = languages.translate_words(scene.classname, "toy-ag")[0]
    background_ag = languages.translate_words("background", "toy-ag")[0]
    # head-final: the setting comes first, the class near the end (English: class first, setting last)
    assert ag.index(background_ag) < ag.index(noun_ag)
    assert ag.split(" ")[-2].startswith(noun_ag)


def test_ro_articles_and_adjectives_agree_with_the_noun_gender():
    genders = set()
    for scene in splits.scenes("test")[:30]:
        words = languages.caption(scene, "short", "toy-ro").lower().rstrip(".").split(" ")
        article, noun, adjective = words[0], words[1], words[-1]
        genders.add(article)
        assert (article, noun[-1], adjective[-1]) in {("un", "o", "o"), ("una", "a", "a")}
    assert genders == {"un", "una"}


@pytest.mark.parametrize("language", languages.LANGUAGES)
def test_every_dataset_has_a_prompt_that_takes_the_class_name(language):
    for dataset in suite.SUITE:
        prompt = languages.template(dataset, language)
        assert prompt.count("{}") == 1
        classname = world.FAMILY_CLASSES[suite.SUITE[dataset]["family"]][0]
        assert languages.class_name(classname, language) in prompt.format(languages.class_name(classname, language))


def test_bad_input_fails_with_the_choices():
    scene = splits.scenes("test")[0]
    with pytest.raises(ValueError, match="unknown language"):
        languages.caption(scene, "short", "fr")
    with pytest.raises(ValueError, match="unknown level"):
        languages.caption(scene, "long", "toy-ro")
    with pytest.raises(KeyError, match="no word for"):
        languages.translate_words("spaceship", "toy-ag")
