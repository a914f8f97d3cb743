"""The training-free OVSS evaluation protocol that SCLIP, ClearCLIP, Trident and their successors share: from dense
features to a label map.

The papers' numbers depend on it as much as on their features, so every dense baseline and method is read out the
same way (Trident `trident.py`: `__init__` builds the queries, `postprocess_result` reads them out; SCLIP and
ClearCLIP have the same two pieces):

1. **Queries.** A class may have several names (`configs/cls_<benchmark>.txt`, names separated by "; "). Each name is
   encoded with CLIP's 80 ImageNet templates, each template embedding L2-normalised, averaged, renormalised: that
   is CLIP's prompt ensembling, `clipbook.zeroshot.zero_shot_classifier(loaded, words, templates)`, not repeated here.
   In the VOC21 file the class "background" is not the word "background" but a list of stuff words (sky, wall,
   tree, …): `query_words` gives the toy benchmarks the same design, background queried by the world's surfaces.
2. **Read-out.** Cosine logits of every query, times `logit_scale` (40), softmax over *all queries*; a class's
   probability is the largest of its queries' (`postprocess_result` merges the background names with `max`); the
   label is the argmax, and where the winning probability is below `prob_thd` the pixel becomes class 0
   (background). The benchmarks with a background class set `prob_thd` (VOC21: 0.1 for CLIP ViT-B/16 in Trident's
   `configs/cfg_voc21.py` comment, SCLIP's own value); the others leave it at 0, which never fires.
"""
from __future__ import annotations

import torch

from clipbook.dense import benchmarks

LOGIT_SCALE = 40.0  # Trident / SCLIP `logit_scale=40` (the segmentor's default)
# the CLIP baselines' probability threshold per benchmark: configs/cfg_voc21.py `prob_thd` ("0.1 CLIP-B/16")
PROB_THRESHOLDS = {"toy-voc21": 0.1}


def query_words(name: str) -> tuple[list[str], list[int]]:
    """Every query name of a benchmark and the class index it stands for (`get_cls_idx` of a cls_*.txt file).

    A benchmark whose class 0 is "background" queries it by the names of the world's surfaces, as cls_voc21.txt
    queries VOC's background by stuff words; every other class is its own name."""
    words, classes = [], []
    for index, classname in enumerate(benchmarks.classnames(name)):
        names = list(benchmarks.STUFF.values()) if classname == "background" else [classname]
        words += names
        classes += [index] * len(names)
    return words, classes


def segment(query_logits: torch.Tensor, query_class: list[int] | torch.Tensor, *, logit_scale: float = LOGIT_SCALE,
            prob_threshold: float = 0.0) -> torch.Tensor:
    """(N, Q, H, W) cosine logits of Q queries → (N, H, W) labels, by the read-out in the module docstring."""
    query_class = torch.as_tensor(query_class, dtype=torch.long, device=query_logits.device)
    if query_logits.dim() != 4 or query_logits.shape[1] != len(query_class):
        raise ValueError(f"query_logits must be (N, Q, H, W) with Q = {len(query_class)} queries; "
                         f"got {tuple(query_logits.shape)}")
    probabilities = (query_logits * logit_scale).softmax(dim=1)
    num_classes = int(query_class.max()) + 1
    per_class = probabilities.new_full((probabilities.shape[0], num_classes, *probabilities.shape[2:]), -1.0)
    # a class's probability is the max over its queries (scatter_reduce keeps it one vectorised pass)
    index = query_class.view(1, -1, 1, 1).expand_as(probabilities)
    per_class = per_class.scatter_reduce(1, index, probabilities, reduce="amax", include_self=True)
    best, labels = per_class.max(dim=1)
    return labels.masked_fill(best < prob_threshold, 0)
