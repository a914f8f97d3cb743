"""Geometry of a joint embedding space: alignment and uniformity (Wang & Isola, ICML 2020, their reference code
`align_uniform/__init__.py`: `align_loss`, `uniform_loss`) and the modality gap (Liang et al., NeurIPS 2022: the
distance between the centroids of the normalised image and text embeddings)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def alignment(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0) -> float:
    """E ||f(x) - f(y)||^alpha over positive pairs (rows of x and y), on normalised features. Lower is better."""
    if x.shape != y.shape:
        raise ValueError(f"positive pairs need features of the same shape; got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = F.normalize(x.float(), dim=-1), F.normalize(y.float(), dim=-1)
    return float((x - y).norm(p=2, dim=1).pow(alpha).mean())


def uniformity(x: torch.Tensor, t: float = 2.0) -> float:
    """log E_{i<j} exp(-t ||f(x_i) - f(x_j)||^2) over distinct pairs, on normalised features. Lower is more uniform."""
    if len(x) < 2:
        raise ValueError("uniformity needs at least 2 embeddings")
    x = F.normalize(x.float(), dim=-1)
    return float(torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log())


def modality_gap(image_features: torch.Tensor, text_features: torch.Tensor) -> float:
    """|| mean(normalised image features) - mean(normalised text features) ||."""
    image_centroid = F.normalize(image_features.float(), dim=-1).mean(0)
    text_centroid = F.normalize(text_features.float(), dim=-1).mean(0)
    return float((image_centroid - text_centroid).norm())
