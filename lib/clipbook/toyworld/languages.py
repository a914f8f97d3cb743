"""Two constructed languages for the toy world, generated from the same scenes as the English captions.

They are not word-for-word ciphers of English. Each has its own lexicon (pseudo-words, drawn once from a seeded
syllable generator and fixed: `lexicon`) and its own grammar:
- "toy-ro", Romance-like: every noun has a gender, shown by its ending (-o / -a); articles and adjectives agree
  with it; adjectives follow the noun; prepositions come before their noun ("foto di una kelira rosa ...").
- "toy-ag", agglutinative and head-final: no articles; adjectives come before the noun and end in -i; the
  roles of nouns are suffixes (-no "of", -de "at", -ni "on"); the phrase order is reversed, the head last.
Aircraft model codes (a320, b747) are kept as loanwords, as real languages keep them. English ("en") captions of
the same levels are produced here too, so the three languages are parallel: caption k of a scene says the same
facts in each. Used for multilingual retrieval and zero-shot (rs-m-clip, dc-clip).
"""
from __future__ import annotations

import re
import zlib
from functools import cache

import numpy as np

from clipbook.toyworld import suite, world

LANGUAGES: dict[str, dict] = {
    "en": {"title": "English (the tiny CLIP's pretraining language)"},
    "toy-ro": {"title": "Romance-like: gendered nouns, agreeing articles and adjectives, noun before adjective",
               "consonants": "bdfglmnprstv", "vowels": "aeiou", "function": {
                   "of": "di", "at": "a", "on": "su", "a_m": "un", "a_f": "una", "type": "tipo", "and": "e"}},
    "toy-ag": {"title": "agglutinative, head-final: no articles, case suffixes, adjective before noun",
               "consonants": "kstnhmyrwg", "vowels": "aiueo", "function": {
                   "of": "no", "at": "de", "on": "ni", "type": "shuru", "and": "to"}},
}
LEVELS = ("name", "short", "medium")
LOANWORD = re.compile(r"\d")  # model codes stay as they are
# the words a caption or a prompt of the suite can need, besides the class names
_VOCABULARY = (list(world.COLOURS) + list(world.SIZES) + list(world.POSITIONS) + list(world.BACKGROUNDS)
               + ["background", "photo", "sketch", "noisy", "cartoon", "satellite", "close-up", "texture"]
               + [h for family in world.FAMILIES.values() for h in family["hypernyms"]])


def _pseudo_word(english: str, language: str, salt: int = 0) -> str:
    spec = LANGUAGES[language]
    rng = np.random.default_rng([zlib.crc32(f"{language}/{english}".encode()), salt])
    syllables = 2 + int(rng.integers(2))
    return "".join(spec["consonants"][int(rng.integers(len(spec["consonants"])))]
                   + spec["vowels"][int(rng.integers(len(spec["vowels"])))] for _ in range(syllables))


@cache
def lexicon(language: str) -> dict[str, str]:
    """English word -> stem in `language`, one-to-one over the world's vocabulary (collisions redrawn)."""
    if language == "en":
        raise ValueError("English needs no lexicon")
    words = sorted({w for name in world.CLASSES for w in name.split(" ")} | set(_VOCABULARY))
    table, used = {}, set()
    for word in words:
        if LOANWORD.search(word):
            table[word] = word
            continue
        salt, stem = 0, _pseudo_word(word, language)
        while stem in used:
            salt += 1
            stem = _pseudo_word(word, language, salt)
        used.add(stem)
        table[word] = stem
    return table


def _check(language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; choose from {', '.join(LANGUAGES)}")


def translate_words(phrase: str, language: str) -> list[str]:
    """The stems of a phrase's words (English word order; grammar is applied by the callers)."""
    _check(language)
    table = lexicon(language)
    unknown = [w for w in phrase.split(" ") if w not in table]
    if unknown:
        raise KeyError(f"{language} has no word for {', '.join(unknown)}; its lexicon covers the world's vocabulary")
    return [table[w] for w in phrase.split(" ")]


def _gender(stem: str) -> str:
    return "f" if zlib.crc32(stem.encode()) % 2 else "m"


def _ro_noun(phrase: str, adjectives: tuple[str, ...] = (), article: bool = True) -> str:
    """toy-ro: article + noun (gender ending) + agreeing adjectives after it."""
    *modifiers, head = translate_words(phrase, "toy-ro")  # "ice cream": the last word is the head
    loanword = bool(LOANWORD.search(head))
    gender = "m" if loanword else _gender(head)  # a loanword is masculine and keeps its form
    end = "a" if gender == "f" else "o"
    noun = " ".join([head + ("" if loanword else end)] + [m + end for m in modifiers])
    adjs = [a + end for adj in adjectives for a in translate_words(adj, "toy-ro")]
    words = ([LANGUAGES["toy-ro"]["function"]["a_" + gender]] if article else []) + [noun] + adjs
    return " ".join(words)


def _ag_noun(phrase: str, adjectives: tuple[str, ...] = (), case: str | None = None) -> str:
    """toy-ag: adjectives (-i) before the noun, then the noun with its case suffix."""
    adjs = [a + "i" for adj in adjectives for a in translate_words(adj, "toy-ag")]
    noun = "".join(translate_words(phrase, "toy-ag"))  # compounds are written as one word
    return " ".join(adjs + [noun + (LANGUAGES["toy-ag"]["function"][case] if case else "")])


def class_name(classname: str, language: str) -> str:
    """The class as a noun phrase in `language` (toy-ro with its article, as English prompts have 'a')."""
    _check(language)
    if classname not in world.CLASSES:
        raise KeyError(f"unknown class {classname!r}")
    if language == "en":
        return classname
    return _ro_noun(classname) if language == "toy-ro" else _ag_noun(classname)


_STYLE_WORDS = {"photo": ("photo", ()), "sketch": ("sketch", ()), "noise": ("photo", ("noisy",)),
                "cartoon": ("cartoon", ()), "aerial": ("photo", ("satellite",)), "texture": ("photo", ("close-up",))}
_TYPED = {"pets": "pet", "aircraft": "aircraft", "flowers": "flower", "food": "food"}


def template(dataset: str, language: str) -> str:
    """The dataset's zero-shot prompt in `language`, with '{}' for `class_name(c, language)`."""
    _check(language)
    if dataset not in suite.SUITE:
        raise KeyError(f"unknown toy dataset {dataset!r}; known: {', '.join(suite.SUITE)}")
    if language == "en":
        return suite.SUITE[dataset]["template"]
    family = suite.SUITE[dataset]["family"]
    noun, adjs = _STYLE_WORDS[world.FAMILIES[family]["domain"]]
    words = LANGUAGES[language]["function"]
    if language == "toy-ro":
        prompt = f"{_ro_noun(noun, adjs)} {words['of']} {{}}"
        if family in _TYPED:
            prompt += f", {words['a_m']} {words['type']} {words['of']} {_ro_noun(_TYPED[family], article=False)}"
        return prompt + "."
    prompt = f"{{}}{words['of']} {_ag_noun(noun, adjs)}"
    if family in _TYPED:
        prompt = f"{_ag_noun(_TYPED[family], case='of')} {words['type']}, " + prompt
    return prompt + "."


def caption(scene: world.Scene, level: str, language: str, rng: np.random.Generator | None = None) -> str:
    """A caption of `scene` at `level` ('name', 'short', 'medium') in `language`; English is the world's own."""
    _check(language)
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
    if language == "en":
        return world.caption(scene, level, rng)
    spec = world.CLASSES[scene.classname]
    noun, style_adjs = _STYLE_WORDS[scene.domain]
    coloured = spec["draw"] not in ("land", "place") and spec["colour"] is None
    colour = (scene.colour,) if coloured and level != "name" else ()
    object_like = spec["draw"] not in ("texture", "land", "place")
    detail = level == "medium" and object_like
    w = LANGUAGES[language]["function"]
    if language == "toy-ro":
        subject = _ro_noun(scene.classname, colour + ((scene.size,) if detail else ()))
        text = subject if level == "short" else f"{_ro_noun(noun, style_adjs)} {w['of']} {subject}"
        if detail:
            text += f" {w['at']} {_ro_noun(scene.position, article=False)} {w['on']} " \
                    f"{_ro_noun('background', (scene.background,))}"
    else:
        subject = _ag_noun(scene.classname, ((scene.size,) if detail else ()) + colour, case=None)
        text = subject if level == "short" else f"{subject}{w['of']} {_ag_noun(noun, style_adjs)}"
        if detail:
            text = f"{_ag_noun('background', (scene.background,), case='on')} " \
                   f"{_ag_noun(scene.position, case='at')} " + text
    return text[0].upper() + text[1:] + "."
