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


def zero_shot_classifier(loaded: LoadedModel, classnames: list[str], templates: list[str]) -> torch.Tensor:
    """Class weights (D, K), one unit column per class, on the CPU like the cached image features."""
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(f"templates must be a non-empty list of strings containing '{{}}', got {templates!r}")
    columns = []
    for classname in classnames:
        name = classname.replace("_", " ")
        embeddings = F.normalize(loaded.encode_text_prompts([t.format(name) for t in templates]).float().cpu(), dim=-1)
        columns.append(F.normalize(embeddings.mean(dim=0), dim=0))
    return torch.stack(columns, dim=1)


def zero_shot_logits(image_features: torch.Tensor, classifier: torch.Tensor, scale: float = 100.0) -> torch.Tensor:
    return scale * F.normalize(image_features, dim=-1) @ classifier
