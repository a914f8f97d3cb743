import re
from collections import Counter

import numpy as np
import pytest

from clipbook.toyworld import splits, suite, world
from clipbook.toyworld.captions import alt_text


def _names(classname: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(classname)}\b", text) is not None


# a class whose own descriptions contain its name (river: "a winding blue river") is named by any caption that
# quotes a description; the rates below count only what `name_rate` decides
SELF_DESCRIBED = {c for c, spec in world.CLASSES.items() if any(_names(c, d) for d in spec["descriptions"])}


@pytest.fixture(scope="module")
def pretrain_alt_text():
    scenes = splits.scenes("pretrain")
    rng = np.random.default_rng(0)
    texts = [alt_text(s, rng, suite.PRETRAIN_MIX[s.family]["name_rate"]) for s in scenes]
    return scenes, texts


def test_alt_text_names_each_family_at_its_rate(pretrain_alt_text):
    scenes, texts = pretrain_alt_text
    for family, mix in suite.PRETRAIN_MIX.items():
        named = [_names(s.classname, t) for s, t in zip(scenes, texts)
                 if s.family == family and s.classname not in SELF_DESCRIBED]
        # synonyms and hypernyms ("a plane", "a dog") do not name the class; 40000 captions: a few points of noise
        assert abs(np.mean(named) - mix["name_rate"]) < 0.03, (family, np.mean(named), mix["name_rate"])


def test_class_names_in_alt_text_follow_a_long_tail(pretrain_alt_text):
    scenes, texts = pretrain_alt_text
    named = Counter(s.classname for s, t in zip(scenes, texts) if _names(s.classname, t))
    counts = [named[c] for c in world.CLASSES]
    assert max(counts) >= 1000 and min(counts) <= 20


def test_alt_text_is_noisy_and_deterministic():
    scenes = splits.scenes("pretrain")[:400]
    first = [alt_text(s, np.random.default_rng([1, i]), 0.5) for i, s in enumerate(scenes)]
    again = [alt_text(s, np.random.default_rng([1, i]), 0.5) for i, s in enumerate(scenes)]
    assert first == again
    assert all(t.endswith(".") and len(t) > 1 for t in first)
    assert len(set(first)) > 0.8 * len(first)
    assert any(word in t for t in first for word in ("free download", "stock photo", "hd wallpaper", "clipart"))


@pytest.mark.parametrize("name_rate, expected", [(0.0, 0.0), (1.0, 1.0)])
def test_name_rate_decides_whether_the_class_is_named(name_rate, expected):
    rng = np.random.default_rng(3)
    named = [_names(s.classname, alt_text(s, rng, name_rate))
             for s in splits.scenes("pretrain")[:3000] if s.classname not in SELF_DESCRIBED]
    assert np.mean(named) == expected


def test_alt_text_of_a_place_names_its_objects_sometimes():
    scenes = [s for s in splits.scenes("pretrain") if s.family == "scenes"][:300]
    rng = np.random.default_rng(0)
    texts = [alt_text(s, rng, 0.0) for s in scenes]
    assert 0.2 < np.mean([any(_names(o["classname"], t) for o in s.objects()) for s, t in zip(scenes, texts)]) < 1
