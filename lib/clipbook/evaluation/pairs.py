"""MMVP-VLM-style pair test: image pairs that differ in one visual attribute, each with the statement that tells them
apart, scored as Tong et al. ("Eyes Wide Shut?", CVPR 2024) score CLIP models in `scripts/evaluate_vlm.py` of
tsb0601/MMVP: each statement's softmax over the pair's two images picks one (probability > 0.5), and a pair counts
only when both statements pick their own image. Chance is 25 %.

The benchmark's pairs are "CLIP-blind": CLIP embeds the two images almost identically (cosine > 0.95) although a
vision-only model tells them apart (DINOv2 cosine < 0.6) — `clip_blind` selects them so. In the toy world the
pairs are exact one-attribute edits (`clipbook.toyworld.edits`), so the difference is real by construction and the
statements are the two scenes' captions.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# MMVP's selection thresholds (paper §3.1): CLIP-similar, DINOv2-dissimilar.
CLIP_MIN_SIMILARITY = 0.95
REFERENCE_MAX_SIMILARITY = 0.6


def _normalised(*features) -> list[torch.Tensor]:
    tensors = [F.normalize(torch.as_tensor(f).float(), dim=-1) for f in features]
    if len({t.shape for t in tensors}) != 1 or tensors[0].ndim != 2:
        raise ValueError(f"pair features must all be (P, D) with the same shape; got {[tuple(t.shape) for t in tensors]}")
    return tensors


def pair_choices(image_a, image_b, text_a, text_b, logit_scale: float = 100.0) -> dict:
    """For P pairs: whether statement a picks image a, statement b picks image b, and both (MMVP's pair score).

    Each statement's logits over the pair's two images go through a softmax (as MMVP's `logits_per_text`); it picks
    image a when that probability exceeds 0.5 (a tie picks image b, as MMVP's strict `>` does).
    """
    image_a, image_b, text_a, text_b = _normalised(image_a, image_b, text_a, text_b)

    def prob_first(text):  # softmax over (image a, image b) for each statement
        logits = logit_scale * torch.stack([(text * image_a).sum(-1), (text * image_b).sum(-1)], dim=-1)
        return logits.softmax(dim=-1)[:, 0]

    a_picks_a = (prob_first(text_a) > 0.5).numpy()
    b_picks_b = ~(prob_first(text_b) > 0.5).numpy()
    return {"a": a_picks_a, "b": b_picks_b, "pair": a_picks_a & b_picks_b}


def pair_accuracy(image_a, image_b, text_a, text_b, logit_scale: float = 100.0) -> float:
    """MMVP-VLM pair accuracy in percent (both statements right)."""
    return 100.0 * float(np.mean(pair_choices(image_a, image_b, text_a, text_b, logit_scale)["pair"]))


def clip_blind(clip_a, clip_b, reference_a, reference_b, clip_min: float = CLIP_MIN_SIMILARITY,
               reference_max: float = REFERENCE_MAX_SIMILARITY) -> np.ndarray:
    """Which pairs are CLIP-blind: CLIP cosine above `clip_min` and the reference (vision-only) cosine below
    `reference_max`."""
    clip_a, clip_b = _normalised(clip_a, clip_b)
    reference_a, reference_b = _normalised(reference_a, reference_b)
    if len(clip_a) != len(reference_a):
        raise ValueError(f"{len(clip_a)} CLIP pairs but {len(reference_a)} reference pairs")
    return (((clip_a * clip_b).sum(-1) > clip_min) & ((reference_a * reference_b).sum(-1) < reference_max)).numpy()
