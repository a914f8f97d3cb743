"""The toy suite: eight toy datasets, each modelled on one of CoOp's eleven few-shot datasets, plus shifted domains
of the generic one, and the pretraining mix the tiny CLIP learns from.

Each dataset is one family of the world (`world.FAMILIES`) with its own classes, its CoOp-style prompt template
(CoOp's `datasets/*.py` templates, per dataset) and train / val / test splits sampled like CoOp's: a labelled
train pool the few-shot sampler draws k shots per class from, a full validation split and a test split.

The pretraining mix (`PRETRAIN_MIX`) is the world's web: how many pretraining images each family has, in which
style, and how often alt-text names the class (a long tail within each family: `ZIPF`). These numbers are the
world's calibration, tuned only against zero-shot and linear-probe curves of real RN50 (notebooks/calibration),
never against a method under test.
"""
from __future__ import annotations

# counterpart: the CoOp dataset this one is modelled on (clipbook registry names); template: CoOp's hand-crafted
# prompt for that dataset; per_class: images per class in the train / val / test splits.
SUITE: dict[str, dict] = {
    "toy": {"family": "objects", "counterpart": "caltech101", "template": "a photo of a {}.",
            "title": "generic objects", "per_class": None},  # the legacy splits: train 1200, val 600, test 2400
    "toy-pets": {"family": "pets", "counterpart": "oxford_pets", "template": "a photo of a {}, a type of pet.",
                 "title": "pets", "per_class": (32, 16, 50)},
    "toy-aircraft": {"family": "aircraft", "counterpart": "fgvc_aircraft",
                     "template": "a photo of a {}, a type of aircraft.", "title": "aircraft variants",
                     "per_class": (32, 16, 50)},
    "toy-flowers": {"family": "flowers", "counterpart": "oxford_flowers",
                    "template": "a photo of a {}, a type of flower.", "title": "flowers", "per_class": (32, 16, 50)},
    "toy-food": {"family": "food", "counterpart": "food101", "template": "a photo of {}, a type of food.",
                 "title": "dishes", "per_class": (32, 16, 50)},
    "toy-textures": {"family": "textures", "counterpart": "dtd", "template": "{} texture.", "title": "textures",
                     "per_class": (32, 16, 50)},
    "toy-satellite": {"family": "satellite", "counterpart": "eurosat",
                      "template": "a centered satellite photo of {}.", "title": "land use from above",
                      "per_class": (32, 16, 50)},
    "toy-scenes": {"family": "scenes", "counterpart": "sun397", "template": "a photo of a {}.",
                   "title": "places (multi-object scenes)", "per_class": (32, 16, 50)},
}

# Shifted domains of the generic dataset, in the spirit of ImageNet's distribution-shift test sets.
SHIFTS: dict[str, dict] = {
    "toy-sketch": {"counterpart": "imagenet_sketch", "title": "outline sketches, no colour or texture"},
    "toy-noise": {"counterpart": None, "title": "heavy noise, low contrast (ImageNet-C-like)"},
    "toy-v2": {"counterpart": "imagenet_v2", "title": "a fresh sample with wider pose, placement and colour"},
    "toy-a": {"counterpart": "imagenet_a", "title": "tiny, off-centre objects beside a distractor object"},
    "toy-r": {"counterpart": "imagenet_r", "title": "renditions: flat cartoons with thick outlines"},
}

# share: fraction of pretraining images; name_rate: probability that an image's alt-text names its class;
# domains: the styles its images come in (a family's native style unless stated).
PRETRAIN_MIX: dict[str, dict] = {
    "objects": {"share": 0.38, "name_rate": 0.9, "domains": {"photo": 0.9, "sketch": 0.05, "cartoon": 0.05}},
    "pets": {"share": 0.17, "name_rate": 0.85},
    "aircraft": {"share": 0.06, "name_rate": 0.5},
    "flowers": {"share": 0.15, "name_rate": 0.8},
    # 0.45 since world 5 (was 0.6): food zero-shot sat 8-12 points over RN50's Food101 in every world-4 draw
    "food": {"share": 0.07, "name_rate": 0.45},
    "textures": {"share": 0.06, "name_rate": 0.9},
    "satellite": {"share": 0.03, "name_rate": 0.02},
    "scenes": {"share": 0.08, "name_rate": 0.15},
}
# Within a family, class k (in a fixed shuffled order) has pretraining weight 1 / (k + 1) ** ZIPF: the head
# classes are seen and named far more often than the tail.
ZIPF = 0.7
PRETRAIN_SIZE = 40000
