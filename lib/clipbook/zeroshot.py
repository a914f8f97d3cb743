"""Prompt templates as data, and the zero-shot classifier of CLIP.

The classifier follows CLIP's prompt ensembling (and CLIP_benchmark's `zero_shot_classifier`):
per class, encode every template filled with the class name, L2-normalise, average, renormalise.
Logits are 100 * <normalised image feature, class weight>.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from clipbook.models.loader import LoadedModel

TOY_TEMPLATES = ["a photo of a {}."]
# CLIP's 80 ImageNet templates, taken from open_clip rather than retyped
try:
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES
    OPENAI_IMAGENET_TEMPLATES = [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]
except ImportError:  # pragma: no cover - open_clip is a hard dependency
    IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES = [], []
# Tip-Adapter/GDA's 7-template ImageNet ensemble (ICLR24 datasets/imagenet.py `imagenet_templates`)
TIP_IMAGENET_TEMPLATES = ["itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
                          "a {} in a video game.", "art of the {}.", "a photo of the small {}."]


def prompt_set_classifier(loaded: LoadedModel, prompts_per_class: list[list[str]], *,
                          renormalize: bool = True) -> torch.Tensor:
    """Class weights (D, K) from a list of prompts per class: the mean of the L2-normalised text
    embeddings of each class's prompts, on the CPU like the cached image features.

    Args:
        loaded: the model.
        prompts_per_class: K lists of prompts (templates filled with a class name, or descriptor sentences).
        renormalize: unit-normalise each mean (CLIP's prompt ensembling). With `False` the logit of a class
            is the *mean cosine* over its prompts, the score of classify-by-description (Menon & Vondrick 2023).

    Returns:
        A (D, K) float tensor.
    """
    if not prompts_per_class or any(not prompts for prompts in prompts_per_class):
        raise ValueError("prompts_per_class must hold a non-empty list of prompts for every class")
    columns = []
    for prompts in prompts_per_class:
        embeddings = F.normalize(loaded.encode_text_prompts(list(prompts)).float().cpu(), dim=-1)
        mean = embeddings.mean(dim=0)
        columns.append(F.normalize(mean, dim=0) if renormalize else mean)
    return torch.stack(columns, dim=1)


def zero_shot_classifier(loaded: LoadedModel, classnames: list[str], templates: list[str]) -> torch.Tensor:
    """Class weights (D, K), one unit column per class, on the CPU like the cached image features."""
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(f"templates must be a non-empty list of strings containing '{{}}', got {templates!r}")
    names = [classname.replace("_", " ") for classname in classnames]
    return prompt_set_classifier(loaded, [[t.format(name) for t in templates] for name in names])


def zero_shot_logits(image_features: torch.Tensor, classifier: torch.Tensor, scale: float = 100.0) -> torch.Tensor:
    return scale * F.normalize(image_features, dim=-1) @ classifier
