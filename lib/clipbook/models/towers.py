"""Parts of open_clip's image towers that adaptation methods run separately.

A ModifiedResNet (the tiny CLIP's tower, and OpenAI's RN50) is a convolutional trunk followed by an attention
pool whose one output is the attention of the spatial-mean token over all tokens. Methods that freeze the trunk
cache its output (CLIP-SVD); methods that add tokens to the pool append them as extra keys and values (NoLA's
prompts on a ResNet tower).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def resnet_trunk(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """ModifiedResNet.forward up to its attention pool: (N, 3, H, W) -> (N, C, H/32, W/32)."""
    return visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(images)))))


def attention_pool(pool: nn.Module, feature_map: torch.Tensor, extra_tokens: torch.Tensor | None = None) -> torch.Tensor:
    """open_clip `AttentionPool2d.forward`, computing only the pooled token's query (the one output it returns).

    Args:
        pool: an `AttentionPool2d` (or anything with its positional_embedding, q/k/v/c_proj and num_heads).
        feature_map: the trunk's output, (N, C, H, W).
        extra_tokens: (1 or N, T, C) tokens appended after the positional embedding, as extra keys and values
            (None: the unmodified pool).

    Returns:
        (N, output_dim) pooled features.
    """
    x = feature_map.flatten(2).transpose(1, 2)  # (N, HW, C)
    x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + pool.positional_embedding.to(x.dtype)
    if extra_tokens is not None:
        x = torch.cat([x, extra_tokens.to(x.dtype).expand(len(x), -1, -1)], dim=1)

    def heads(t: torch.Tensor) -> torch.Tensor:  # (N, L, C) -> (N, H, L, C / H)
        return t.unflatten(-1, (pool.num_heads, -1)).transpose(1, 2)

    pooled = F.scaled_dot_product_attention(heads(pool.q_proj(x[:, :1])), heads(pool.k_proj(x)), heads(pool.v_proj(x)))
    return pool.c_proj(pooled.transpose(1, 2).flatten(2))[:, 0]
