"""Long captions: multi-sentence descriptions of a scene that run past the tiny CLIP's 32-token context.

Like the dense captions of ShareGPT4V or Urban-1k, a long caption opens with a coarse summary and puts the
details in later sentences: the summary names only the family ("a pet", "an aircraft"), the setting follows,
and the class, its colour, size, place, visual descriptions and any further objects come after that. A text
tower that truncates at 32 tokens (30 after the start and end tokens) therefore keeps the summary and loses the
details, which is what makes truncation measurable (tests/toyworld/test_long_captions.py checks where the class
name falls). Sentence wording varies with the random generator, so several long captions of one image differ
the way several annotators' captions do; the facts never change.
"""
from __future__ import annotations

import numpy as np

from clipbook.toyworld import world

WHERE = {"centre": "in the middle of the picture", "left": "on the left side", "right": "on the right side",
         "top": "near the top edge", "bottom": "near the bottom edge"}
OPENINGS = ("{style} of {hypernym}.", "This is {style} showing {hypernym}.", "Here we see {style} of {hypernym}.")
SETTINGS = ("The whole scene is set against {bg}.", "Everything is placed on {bg}.", "The picture has {bg}.")


def _choice(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _hypernym(scene: world.Scene) -> str:
    word = world.FAMILIES[scene.family]["hypernyms"][0]
    return f"{world._article(word)} {word}"


def long_caption(scene: world.Scene, rng: np.random.Generator | None = None) -> str:
    """A multi-sentence caption whose distinguishing details come after the 32-token context."""
    rng = rng or np.random.default_rng(scene.noise_seed)
    spec, name = world.CLASSES[scene.classname], scene.classname
    style = world.DOMAINS[scene.domain]["word"]
    bg = world.BACKGROUNDS[scene.background]["phrase"]
    d1, d2 = (spec["descriptions"][int(i)] for i in rng.choice(len(spec["descriptions"]), 2, replace=False))
    sentences = [_choice(rng, OPENINGS).format(style=style, hypernym=_hypernym(scene)).capitalize()]
    if spec["draw"] == "texture":
        sentences += ["The pattern fills the frame from edge to edge, with no object in front of it.",
                      "Its marks repeat at a regular spacing across the whole surface.",
                      f"Its main colour is {scene.colour}.",
                      f"It is a {name} texture, with {d1} and {d2}."]
    elif spec["draw"] == "land":
        sentences += ["The view looks straight down on the ground from high above, as from a satellite.",
                      "Fields, roads or water may be visible, and there are no people or animals in view.",
                      f"The area shows {name}, with {d1} and {d2}."]
    elif spec["draw"] == "place":
        sentences += [_choice(rng, SETTINGS).format(bg=bg),
                      "Several objects stand in different parts of the picture, apart from each other.",
                      f"The place is {world._article(name)} {name}, which has {d1} and {d2}."]
        sentences += [f"There is {world.object_phrase(o['classname'], o['colour'])} in one of the corners."
                      for o in scene.objects()]
    else:
        sentences += [_choice(rng, SETTINGS).format(bg=bg),
                      f"The main subject is shown on its own, {WHERE[scene.position]}, and it looks {scene.size}.",
                      f"Its main colour is {scene.colour}.",
                      f"It is {world.object_phrase(name)}, with {d1} and {d2}."]
        sentences += [f"Next to it there is also {world.object_phrase(o['classname'], o['colour'])}."
                      for o in scene.objects()[1:]]
    return " ".join(sentences)


def short_caption(scene: world.Scene, rng: np.random.Generator | None = None) -> str:
    """The one-sentence summary a long caption is paired with (Long-CLIP's short text): the world's 'medium'
    caption, which fits the 32-token context."""
    return world.caption(scene, "medium", rng)
