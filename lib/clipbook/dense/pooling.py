"""Region features from a dense feature map: box pooling with torchvision's `roi_align` (as region-level CLIPs
such as CLOC and DeCLIP's region evaluation pool boxes) and mask pooling (a soft-weighted mean feature under a
mask). MAFT+/FC-CLIP's `MaskPooling` differs: it resizes the mask bilinearly to the feature grid and keeps the cells
where it is > 0 as a hard mask (fcclip `fcclip_transformer_decoder.py`); a notebook following it says so.

`box_pool` with `output_size=1` and the default `sampling_ratio=2` reads a box from 2×2 bilinear samples, as
roi_align's callers in detection heads do at their larger output sizes; pass `sampling_ratio=0` (adaptive) to average
over every feature cell a box covers."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align


def box_pool(feature_map: torch.Tensor, boxes: list[torch.Tensor], image_size: tuple[int, int],
             output_size: int = 1, sampling_ratio: int = 2) -> torch.Tensor:
    """Features of boxes given in image pixels (x1, y1, x2, y2), one (K_i, 4) tensor per image.

    Returns (ΣK_i, C) when output_size is 1, else (ΣK_i, C, s, s). `spatial_scale` maps pixels onto the feature
    grid; `aligned=True` is the half-pixel-correct variant detectron2 and torchvision recommend.
    """
    n, _, h, w = feature_map.shape
    if len(boxes) != n:
        raise ValueError(f"one box tensor per image: {n} feature maps, {len(boxes)} box tensors")
    scale = w / image_size[1]
    if abs(h / image_size[0] - scale) > 1e-6:
        raise ValueError(f"the feature map {h}×{w} is not a uniform downscale of the image {image_size}")
    pooled = roi_align(feature_map, [b.to(feature_map.dtype) for b in boxes], output_size, spatial_scale=scale,
                       sampling_ratio=sampling_ratio, aligned=True)
    return pooled.flatten(1) if output_size == 1 else pooled


def mask_pool(feature_map: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean feature under each mask: feature_map (N, C, h, w), masks (N, K, H, W) at any resolution → (N, K, C).

    Masks are resized to the feature grid by area averaging (a soft mask weight per cell), so a small object still
    weighs the cells it partly covers; an empty mask gives a zero feature, not NaN.
    """
    if masks.ndim != 4 or masks.shape[0] != feature_map.shape[0]:
        raise ValueError(f"masks must be (N, K, H, W) with N={feature_map.shape[0]}; got {tuple(masks.shape)}")
    weights = F.adaptive_avg_pool2d(masks.to(feature_map.dtype), feature_map.shape[-2:])  # (N, K, h, w)
    summed = torch.einsum("nkhw,nchw->nkc", weights, feature_map)
    return summed / weights.sum(dim=(-2, -1)).clamp_min(1e-12).unsqueeze(-1)
