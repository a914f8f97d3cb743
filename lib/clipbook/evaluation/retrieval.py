"""Image↔text retrieval: recall@K in both directions, with several captions per image.

The definition is CLIP_benchmark's `zeroshot_retrieval.evaluate` (and that of the CLIP papers): a query counts
as found at K when at least one of its matching items is among its K nearest. Text→image ("image retrieval")
has one matching image per caption; image→text ("text retrieval") has all of the image's captions. The keys are
CLIP_benchmark's, the values percentages. tests/evaluation/test_retrieval.py checks equality with CLIP_benchmark
on the same features.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from clipbook.models.loader import LoadedModel


def _checked(image_features, text_features, text_image) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images = F.normalize(torch.as_tensor(image_features).float(), dim=-1)
    texts = F.normalize(torch.as_tensor(text_features).float(), dim=-1)
    owner = torch.as_tensor(np.asarray(text_image), dtype=torch.long)
    if images.ndim != 2 or texts.ndim != 2 or images.shape[1] != texts.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D) with the same D; got {tuple(images.shape)} and "
                         f"{tuple(texts.shape)}")
    if owner.shape != (len(texts),):
        raise ValueError(f"text_image must give one image index per caption ({len(texts)}), got shape "
                         f"{tuple(owner.shape)}")
    if len(owner) and (owner.min() < 0 or owner.max() >= len(images)):
        raise ValueError(f"text_image indexes images 0..{len(images) - 1}; got {int(owner.min())}..{int(owner.max())}")
    return images, texts, owner


def recall_at_k(image_features, text_features, text_image: Sequence[int], ks: Sequence[int] = (1, 5, 10)) -> dict:
    """Recall@K (%) of text→image (`image_retrieval_recall@K`) and image→text (`text_retrieval_recall@K`).

    Args:
        image_features: (N, D) image embeddings (normalised here).
        text_features: (M, D) caption embeddings (normalised here).
        text_image: for each caption, the index of its image.
        ks: the K values; a K larger than the gallery is clipped to it.
    """
    images, texts, owner = _checked(image_features, text_features, text_image)
    scores = texts @ images.T  # (M captions, N images)
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(len(texts)), owner] = True
    # rank of the best-ranked match: a query is found at K when that rank < K; computed once for every K. A
    # non-matching item that ties with the best match counts as ranked above it. Without ties this is CLIP_benchmark's
    # top-K exactly; with ties (identical captions of different images, which short toy captions produce) top-K's
    # order among equal scores is arbitrary, and counting ties as found would credit a model for what it cannot tell
    # apart.
    text_to_image_rank = ((scores >= scores[torch.arange(len(texts)), owner][:, None]) & ~positive).sum(1)
    best_caption_score = scores.masked_fill(~positive, float("-inf")).max(0).values  # per image
    image_to_text_rank = ((scores.T >= best_caption_score[:, None]) & ~positive.T).sum(1)
    metrics = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"recall@K needs K >= 1, got {k}")
        metrics[f"image_retrieval_recall@{k}"] = float((text_to_image_rank < k).double().mean() * 100)
        metrics[f"text_retrieval_recall@{k}"] = float((image_to_text_rank < k).double().mean() * 100)
    return metrics


def recall_metrics(image_features, text_features, text_image: Sequence[int],
                   ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """`recall_at_k` under the workbook's metric names, in the order the tables show them: for each K,
    "R@K text→image" then "R@K image→text"."""
    recalls = recall_at_k(image_features, text_features, text_image, ks=ks)
    named = {}
    for k in ks:
        named[f"R@{k} text→image"] = recalls[f"image_retrieval_recall@{k}"]
        named[f"R@{k} image→text"] = recalls[f"text_retrieval_recall@{k}"]
    return named


def text_features(loaded: LoadedModel, texts: Sequence[str], *, batch_size: int = 512) -> torch.Tensor:
    """L2-normalised text embeddings (M, D) on the CPU, in batches; the tokenizer truncates to the context."""
    parts = [F.normalize(loaded.encode_text_prompts(list(texts[i:i + batch_size])).float().cpu(), dim=-1)
             for i in range(0, len(texts), batch_size)]
    if not parts:
        raise ValueError("no texts to encode")
    return torch.cat(parts)


def caption_retrieval_sets(names: Sequence[str], *, toy_style: str = "detailed", per_image: int = 5,
                           seed: int = 1) -> list[tuple[str, object, list[str], np.ndarray]]:
    """The test split of each caption set as (name, dataset, captions, owner) for `recall_at_k`: a real set's own
    captions (`caption_pairs`); a toy set's `per_image` captions per scene in `toy_style`
    (`toyworld.caption_sets.captions`, fixed by `seed`), since toy scenes carry no captions of their own. The
    training-recipe notebooks that fine-tune and then retrieve evaluate every arm on these same sets."""
    from clipbook.data.registry import load_dataset
    from clipbook.toyworld import caption_sets

    sets = []
    for name in names:
        test = load_dataset(name, "test")
        if hasattr(test, "caption_pairs"):
            texts, owner = test.caption_pairs()
        else:
            texts, owner = caption_sets.captions(test.scenes, toy_style, per_image=per_image, seed=seed)
        sets.append((name, test, texts, np.asarray(owner)))
    return sets
