"""Parts of open_clip's image towers that adaptation methods run separately.

A ModifiedResNet (the tiny CLIP's tower, and OpenAI's RN50) is a convolutional trunk followed by an attention
pool whose one output is the attention of the spatial-mean token over all tokens. Methods that freeze the trunk
cache its output (CLIP-SVD); methods that add tokens to the pool append them as extra keys and values (NoLA's
prompts on a ResNet tower). A larger input than the tower's training size gives a larger trunk map; the pool then
reads it with its positional embedding resized (`pool_positional_embedding`), and region and query methods read
every token it outputs, not only the pooled one (`attention_pool_tokens`: CLOC, GRAIN).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def resnet_trunk(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """ModifiedResNet.forward up to its attention pool: (N, 3, H, W) -> (N, C, H/32, W/32)."""
    return visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(images)))))


def resize_positional_embedding(embedding: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A (1 + n², C) positional embedding (one class or mean token, then an n×n grid of cells) for an h×w grid: the
    same tensor at n×n, else the cells resized bicubically with the first entry kept (CLIP's
    `interpolate_pos_encoding` for a ViT, and the attention pool's for a ResNet). Gradients reach the embedding."""
    trained = int(math.isqrt(embedding.shape[0] - 1))
    if tuple(grid) == (trained, trained):
        return embedding
    cells = embedding[1:].reshape(1, trained, trained, -1).permute(0, 3, 1, 2)
    cells = F.interpolate(cells, size=tuple(grid), mode="bicubic", align_corners=False)
    return torch.cat([embedding[:1], cells.permute(0, 2, 3, 1).flatten(1, 2)[0]])


def pool_positional_embedding(pool: nn.Module, grid: tuple[int, int]) -> torch.Tensor:
    """An attention pool's positional embedding (1 + h·w, C) for a trunk map of h×w cells (the ResNet counterpart of
    `dense.features.positional_embedding_for`)."""
    return resize_positional_embedding(pool.positional_embedding, grid)


def attention_pool(pool: nn.Module, feature_map: torch.Tensor, extra_tokens: torch.Tensor | None = None) -> torch.Tensor:
    """open_clip `AttentionPool2d.forward`, computing only the pooled token's query (the one output it returns).

    Args:
        pool: an `AttentionPool2d` (or anything with its positional_embedding, q/k/v/c_proj and num_heads).
        feature_map: the trunk's output, (N, C, H, W), at the trained grid or any other
            (`pool_positional_embedding`).
        extra_tokens: (1 or N, T, C) tokens appended after the positional embedding, as extra keys and values
            (None: the unmodified pool).

    Returns:
        (N, output_dim) pooled features.
    """
    x = feature_map.flatten(2).transpose(1, 2)  # (N, HW, C)
    position = pool_positional_embedding(pool, tuple(feature_map.shape[-2:]))
    x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + position.to(x.dtype)
    if extra_tokens is not None:
        x = torch.cat([x, extra_tokens.to(x.dtype).expand(len(x), -1, -1)], dim=1)

    def heads(t: torch.Tensor) -> torch.Tensor:  # (N, L, C) -> (N, H, L, C / H)
        return t.unflatten(-1, (pool.num_heads, -1)).transpose(1, 2)

    pooled = F.scaled_dot_product_attention(heads(pool.q_proj(x[:, :1])), heads(pool.k_proj(x)), heads(pool.v_proj(x)))
    return pool.c_proj(pooled.transpose(1, 2).flatten(2))[:, 0]


def attention_pool_tokens(pool: nn.Module, feature_map: torch.Tensor) -> torch.Tensor:
    """open_clip `AttentionPool2d.forward` with every output kept: (N, C, H, W) trunk map → (N, 1 + H·W, D).

    open_clip's pool attends from all 1 + H·W tokens (the mean token first) and returns only the first output; the
    others are per-location tokens in the joint width, which a query decoder (GRAIN) or region pooling reads. Token 0
    is `pool(feature_map)`. Any grid (`pool_positional_embedding`).
    """
    x = feature_map.flatten(2).permute(2, 0, 1)
    position = pool_positional_embedding(pool, tuple(feature_map.shape[-2:]))
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0) + position[:, None, :].to(x.dtype)
    x, _ = F.multi_head_attention_forward(
        query=x, key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight,
        in_proj_weight=None, in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0, out_proj_weight=pool.c_proj.weight,
        out_proj_bias=pool.c_proj.bias, use_separate_proj_weight=True, training=pool.training, need_weights=False)
    return x.permute(1, 0, 2)


def resnet_stages(visual: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """The feature maps after each of a ModifiedResNet's four stages (multi-level features, e.g. COMM's CLIP branch).

    Returns [layer1, layer2, layer3, layer4] outputs, (N, C_l, H/4/2^l', W/...) each; the last equals
    `resnet_trunk(visual, images)`.
    """
    x, maps = visual.stem(images), []
    for stage in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = stage(x)
        maps.append(x)
    return maps


def vit_block_maps(vit: nn.Module, images: torch.Tensor, *, final_norm_last: bool = True) -> list[torch.Tensor]:
    """A timm VisionTransformer's patch tokens after each block, as (N, D, H/p, W/p) maps (multi-level features).

    The prefix tokens (CLS, registers) are dropped. With `final_norm_last`, the last block's tokens pass the
    model's final LayerNorm, so the last map equals `vit.forward_features(images)`'s patch tokens; the others are
    the raw residual stream.
    """
    x = vit.norm_pre(vit._pos_embed(vit.patch_embed(images)))
    side_h, side_w = images.shape[-2] // vit.patch_embed.patch_size[0], images.shape[-1] // vit.patch_embed.patch_size[1]
    maps = []
    for index, block in enumerate(vit.blocks):
        x = block(x)
        tokens = vit.norm(x) if final_norm_last and index == len(vit.blocks) - 1 else x
        maps.append(tokens[:, vit.num_prefix_tokens:].transpose(1, 2).unflatten(2, (side_h, side_w)))
    return maps
