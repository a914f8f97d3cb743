"""Sliding-window inference, as mmseg's `EncoderDecoder.slide_inference` (mmseg/models/segmentors/encoder_decoder.py)
runs it and the training-free OVSS papers (MaskCLIP, SCLIP, ClearCLIP, Trident, CLIP-DINOiser) configure it.

Windows of `crop` pixels start every `stride` pixels; the last row and column of windows are shifted back so that
they end on the image border (mmseg: `y1 = max(y2 - h_crop, 0)`), so every pixel is covered. Each window's logits
are added into the full map and divided by how many windows covered each pixel.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def window_grid(size: tuple[int, int], crop: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The (y1, y2, x1, x2) windows mmseg's slide inference visits on an image of `size` = (H, W)."""
    (h_img, w_img), (h_crop, w_crop), (h_stride, w_stride) = size, crop, stride
    if min(h_crop, w_crop, h_stride, w_stride) < 1:
        raise ValueError(f"crop and stride must be positive; got crop={crop}, stride={stride}")
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    windows = []
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y2, x2 = min(h_idx * h_stride + h_crop, h_img), min(w_idx * w_stride + w_crop, w_img)
            windows.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
    return windows


def slide_inference(images: torch.Tensor, predict: Callable[[torch.Tensor], torch.Tensor],
                    crop: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """Per-pixel logits (N, C, H, W) from `predict`, which maps a (N, 3, h, w) crop to (N, C, h, w) logits.

    All windows of the batch go through `predict` in one call (they have the same size unless the image is smaller
    than the crop, where there is only one window), which is what makes this fast on a CPU.
    """
    n, _, h_img, w_img = images.shape
    windows = window_grid((h_img, w_img), crop, stride)
    crops = torch.cat([images[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in windows])
    logits = predict(crops)
    if logits.shape[0] != len(crops) or logits.shape[-2:] != crops.shape[-2:]:
        raise ValueError(f"predict must return (N, C, h, w) logits at the crop's size {tuple(crops.shape[-2:])}; "
                         f"got {tuple(logits.shape)}")
    total = images.new_zeros((n, logits.shape[1], h_img, w_img), dtype=logits.dtype)
    count = images.new_zeros((1, 1, h_img, w_img), dtype=logits.dtype)
    for (y1, y2, x1, x2), window_logits in zip(windows, logits.split(n)):
        total += F.pad(window_logits, (x1, w_img - x2, y1, h_img - y2))
        count[..., y1:y2, x1:x2] += 1
    return total / count
