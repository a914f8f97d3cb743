"""Class-agnostic mask proposals: a labelled toy stand-in for the Mask2Former / MaskFormer / SAM proposals that
OVSeg, MAFT+ and Trident classify or use to refine affinities.

It is NOT a learned proposal network. It starts from the world's own visible instance masks
(`benchmarks.Mosaic.annotations`) and degrades them the ways real proposals fail, with a seeded generator per image:

- a missed object (`miss_rate`); every kept mask's boundary moved by one to `max_jitter` px (a random dilation or
  erosion) and the mask shifted by up to `max_shift` px;
- over-segmentation: an object also proposed as one of its halves, cut by a random line (`split_rate`);
- under-segmentation: two touching-or-not objects proposed as one mask (`merge_rate`);
- stuff: the background (everything no object covers) as one proposal, as a semantic Mask2Former proposes stuff;
- clutter: `clutter` random ellipses that match nothing.

Its quality is measured, not assumed: `proposal_recall` is the fraction of ground-truth objects some proposal covers
at IoU ≥ a threshold, which every notebook using it reports beside its results. The real path uses the paper's own
proposal network (its weights file) instead.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from clipbook.dense.benchmarks import IMAGE_SIZE, Mosaic

PROPOSALS = {"miss_rate": 0.1, "max_jitter": 2, "max_shift": 2, "split_rate": 0.3, "merge_rate": 0.2,
             "background": True, "clutter": 2}


def _jitter(mask: np.ndarray, rng: np.random.Generator, config: dict) -> np.ndarray:
    steps = int(rng.integers(0, config["max_jitter"] + 1))
    if steps:
        op = ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion
        moved = op(mask, iterations=steps)
        mask = moved if moved.any() else mask  # a tiny object eroded away keeps its mask
    dy, dx = rng.integers(-config["max_shift"], config["max_shift"] + 1, size=2)
    return np.roll(mask, (int(dy), int(dx)), axis=(0, 1))


def _half(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    angle = rng.uniform(0, np.pi)
    cy, cx = ys.mean(), xs.mean()
    grid_y, grid_x = np.mgrid[:mask.shape[0], :mask.shape[1]]
    side = (grid_x - cx) * np.cos(angle) + (grid_y - cy) * np.sin(angle) > 0
    return mask & side


def _ellipse(size: int, rng: np.random.Generator) -> np.ndarray:
    cy, cx = rng.uniform(0, size, size=2)
    ry, rx = rng.uniform(size / 10, size / 3, size=2)
    grid_y, grid_x = np.mgrid[:size, :size]
    return ((grid_y - cy) / ry) ** 2 + ((grid_x - cx) / rx) ** 2 <= 1


def scene_proposals(masks: list[np.ndarray], size: int, rng: np.random.Generator, config: dict = PROPOSALS) -> np.ndarray:
    """Proposals (K, size, size) bool for one image from its visible object masks (see the module docstring)."""
    objects = [m for m in masks if m.any()]
    proposals = []
    for mask in objects:
        if rng.random() < config["miss_rate"]:
            continue
        proposals.append(_jitter(mask, rng, config))
        if rng.random() < config["split_rate"]:
            half = _half(mask, rng)  # one cut: the half checked for pixels is the half proposed
            if half.any():
                proposals.append(half)
    if len(objects) >= 2 and rng.random() < config["merge_rate"]:
        i, j = rng.choice(len(objects), size=2, replace=False)
        proposals.append(objects[i] | objects[j])
    if config["background"]:
        covered = np.logical_or.reduce(objects) if objects else np.zeros((size, size), bool)
        if (~covered).any():
            proposals.append(~covered)
    proposals += [_ellipse(size, rng) for _ in range(config["clutter"])]
    proposals = [p for p in proposals if p.any()]
    return np.stack(proposals) if proposals else np.zeros((0, size, size), bool)


def toy_proposals(images: list[Mosaic], seed: int = 0, config: dict | None = None) -> list[np.ndarray]:
    """Per benchmark image, its stand-in proposals (K_i, IMAGE_SIZE, IMAGE_SIZE) bool; a pure function of
    (images, seed, config)."""
    config = {**PROPOSALS, **(config or {})}
    unknown = set(config) - set(PROPOSALS)
    if unknown:
        raise ValueError(f"unknown proposal settings {sorted(unknown)}; known: {', '.join(PROPOSALS)}")
    return [scene_proposals([a["mask"] for a in image.annotations()], IMAGE_SIZE,
                            np.random.default_rng([seed, index]), config)
            for index, image in enumerate(images)]


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boolean masks a (K, H, W) and b (M, H, W) → (K, M); 0 where both are empty."""
    a2, b2 = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    intersection = a2 @ b2.T
    union = a2.sum(1)[:, None] + b2.sum(1)[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def proposal_recall(proposals: list[np.ndarray], gt_masks: list[np.ndarray], iou: float = 0.5) -> float:
    """Fraction (0..1) of ground-truth masks (per image (M_i, H, W); empty ones skipped) that some proposal of the
    same image covers at IoU ≥ `iou` — the class-agnostic recall detection and segmentation papers report."""
    found = total = 0
    for props, gts in zip(proposals, gt_masks, strict=True):
        gts = np.asarray(gts)
        gts = gts[gts.reshape(len(gts), -1).any(1)] if len(gts) else gts
        if not len(gts):
            continue
        total += len(gts)
        if len(props):
            found += int((mask_iou(np.asarray(props), gts).max(0) >= iou).sum())
    return found / total if total else float("nan")


def semantic_inference(mask_probs: torch.Tensor, class_probs: torch.Tensor) -> torch.Tensor:
    """Per-pixel class scores from scored proposals, as Mask2Former's `semantic_inference`
    (facebookresearch/Mask2Former `mask2former/maskformer_model.py`: einsum("qc,qhw->chw") of the class
    probabilities and the mask probabilities), used by OVSeg and MAFT+: mask_probs (K, H, W) in [0, 1],
    class_probs (K, C) → (C, H, W)."""
    if mask_probs.shape[0] != class_probs.shape[0]:
        raise ValueError(f"one class distribution per mask: {mask_probs.shape[0]} masks, {class_probs.shape[0]} rows")
    return torch.einsum("qc,qhw->chw", class_probs, mask_probs)
