"""Dense (per-location) CLIP features.

MaskCLIP (Zhou et al., ECCV 2022) reads a ResNet CLIP densely by skipping the attention pool's query–key
attention: each location of the trunk's feature map goes through the pool's value and output projections alone,
which land it in the joint embedding space (chongzhou96/MaskCLIP `mmseg/models/decode_heads/maskclip_head.py`,
`MaskClipHead.forward`, non-ViT branch: `feat = c_proj(v_proj(x))` as 1×1 convolutions, no positional embedding).
Classification is then the cosine of each location with the class text embeddings (`MaskClipHead.cls_seg`).

The trunk is fully convolutional, so a larger input gives a finer map (MaskCLIP runs RN50, trained at 224 px, at
512 px). The tiny CLIP sees 64 px images as a 2×2 map; upsampled to 256 px it gives 8×8.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from clipbook.models.towers import resnet_trunk


def maskclip_features(visual: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) normalised images → (N, D, H/32, W/32) value-path features of a ModifiedResNet tower."""
    pool = getattr(visual, "attnpool", None)
    if pool is None or not hasattr(pool, "v_proj"):
        raise TypeError(f"MaskCLIP's ResNet path needs a ModifiedResNet tower with an attention pool; got "
                        f"{type(visual).__name__}")
    x = resnet_trunk(visual, images).permute(0, 2, 3, 1)  # (N, h, w, C): the projections act per location
    return pool.c_proj(pool.v_proj(x)).permute(0, 3, 1, 2)


def dense_logits(features: torch.Tensor, text_embeddings: torch.Tensor, size: tuple[int, int] | None = None,
                 scale: float = 1.0) -> torch.Tensor:
    """Cosine of every location with every class (MaskCLIP `cls_seg`), optionally resized bilinearly to `size`
    (mmseg's `resize(..., mode='bilinear', align_corners=False)` of the logits to the image)."""
    features = F.normalize(features, dim=1)
    logits = scale * torch.einsum("ndhw,cd->nchw", features, F.normalize(text_embeddings, dim=-1))
    if size is not None and tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return logits
