"""Dense (per-location) CLIP features, for a ResNet tower (MaskCLIP's value path) and a ViT tower (the last-block
surgeries of MaskCLIP, SCLIP and ClearCLIP).

MaskCLIP (Zhou et al., ECCV 2022) reads a ResNet CLIP densely by skipping the attention pool's query–key
attention: each location of the trunk's feature map goes through the pool's value and output projections alone,
which land it in the joint embedding space (chongzhou96/MaskCLIP `mmseg/models/decode_heads/maskclip_head.py`,
`MaskClipHead.forward`, non-ViT branch: `feat = c_proj(v_proj(x))` as 1×1 convolutions, no positional embedding).
Classification is then the cosine of each location with the class text embeddings (`MaskClipHead.cls_seg`).

The trunk is fully convolutional, so a larger input gives a finer map (MaskCLIP runs RN50, trained at 224 px, at
512 px). The tiny CLIP sees 64 px images as a 2×2 map; upsampled to 256 px it gives 8×8.

A ViT's patch tokens after the last block carry little location-specific information: its query–key attention mixes
every token toward a few global ones. The training-free OVSS papers change only the last block, and ClearCLIP's code
states them in one framework (mc-lan/ClearCLIP `open_clip/transformer.py`, `VisionTransformer.forward` and
`custom_attn`): the last block's attention weights are

    vanilla   softmax(q kᵀ / √d)                         (CLIP itself)
    maskclip  I (each token attends only to itself: the value path)
    sclip     softmax(q qᵀ / √d) + softmax(k kᵀ / √d)    (SCLIP's correlative self-attention)
    clearclip softmax(q qᵀ / √d)

then the out-projection; the block's residual and FFN are kept (MaskCLIP: chongzhou96/MaskCLIP
`mmseg/models/backbones/vit.py`, `TransformerEncoderLayer.forward`, `v += x; v = ffn(norm2(v), identity=v)`; SCLIP:
wangf3014/SCLIP `clip/model.py`, `VisionTransformer.forward`) or dropped (ClearCLIP, `ignore_residual=True`), and
the tokens go through `ln_post` and the projection into the joint space. A larger input than the model's size gets
its positional embedding resized bicubically, as those codes' `interpolate_pos_encoding`.

Methods that guide CLIP with a self-supervised ViT (CLIP-DINOiser, Trident, DeCLIP) read that encoder's last-layer
patch tokens on the same pixels (`ssl_patch_tokens`, after `clip_to_imagenet`), and those that rewrite CLIP's last
block themselves take its tokens into the joint space with `project_tokens`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from clipbook.models.tiny_ssl import IMAGENET_MEAN, IMAGENET_STD
from clipbook.models.towers import resize_positional_embedding, resnet_trunk


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


ATTENTIONS = ("vanilla", "maskclip", "sclip", "clearclip")  # the last block's attention weights (module docstring)
# per method: (attention, residual and FFN kept) as its official code runs the last block (module docstring)
VIT_SURGERIES: dict[str, dict] = {
    "vanilla": {"attention": "vanilla", "residual": True},
    "maskclip": {"attention": "maskclip", "residual": True},
    "sclip": {"attention": "sclip", "residual": True},
    "clearclip": {"attention": "clearclip", "residual": False},
}


def _check_vit(visual: torch.nn.Module) -> None:
    if not hasattr(visual, "transformer") or not hasattr(visual, "conv1") or getattr(visual, "attn_pool", None) is not None:
        raise TypeError(f"ViT dense features need an open_clip VisionTransformer with token pooling; got "
                        f"{type(visual).__name__}")


def positional_embedding_for(visual: torch.nn.Module, grid: tuple[int, int]) -> torch.Tensor:
    """The tower's positional embedding (1 + h·w, width) for a grid of h×w patches, the patch part resized
    bicubically when the grid differs from the one it was trained at (ClearCLIP/SCLIP `interpolate_pos_encoding`)."""
    return resize_positional_embedding(visual.positional_embedding, grid)


def vit_tokens_before_last_block(visual: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) normalised images → (N, 1 + h·w, width) tokens entering the last transformer block (CLS first),
    as open_clip `VisionTransformer._embeds` and the blocks before the last one compute them."""
    _check_vit(visual)
    x = visual.conv1(images)
    grid = tuple(x.shape[-2:])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.to(x.dtype).expand(len(x), 1, -1), x], dim=1)
    x = visual.ln_pre(x + positional_embedding_for(visual, grid).to(x.dtype))
    batch_first = getattr(visual.transformer, "batch_first", True)  # older open_clip runs its blocks sequence-first
    x = x if batch_first else x.transpose(0, 1)
    for block in visual.transformer.resblocks[:-1]:
        x = block(x)
    return x if batch_first else x.transpose(0, 1)


def last_block_attention(block: torch.nn.Module, tokens: torch.Tensor, attention: str) -> torch.Tensor:
    """The last block's attention output (after out_proj) on (N, L, width) tokens, with the given attention weights
    (ClearCLIP `custom_attn`: q, k, v from the block's in-projection of `ln_1(tokens)`, per head)."""
    if attention not in ATTENTIONS:
        raise ValueError(f"unknown attention {attention!r}; known: {', '.join(ATTENTIONS)}")
    attn = block.attn
    q, k, v = F.linear(block.ln_1(tokens), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)

    def heads(t: torch.Tensor) -> torch.Tensor:  # (N, L, C) -> (N, H, L, C / H)
        return t.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2)

    q, k, v = heads(q), heads(k), heads(v)
    scale = q.shape[-1] ** -0.5
    if attention == "maskclip":
        out = v
    else:
        if attention == "vanilla":
            weights = (q @ k.transpose(-2, -1) * scale).softmax(-1)
        elif attention == "clearclip":
            weights = (q @ q.transpose(-2, -1) * scale).softmax(-1)
        else:
            weights = (q @ q.transpose(-2, -1) * scale).softmax(-1) + (k @ k.transpose(-2, -1) * scale).softmax(-1)
        out = weights @ v
    return attn.out_proj(out.transpose(1, 2).flatten(2))


def vit_dense_features(visual: torch.nn.Module, images: torch.Tensor, attention: str = "clearclip",
                       residual: bool | None = None) -> torch.Tensor:
    """(N, 3, H, W) normalised images → (N, D, H/p, W/p) patch features in the joint space, the last block run as
    the method `attention` names runs it (VIT_SURGERIES; `residual` overrides whether its residual and FFN are kept)."""
    if attention not in VIT_SURGERIES:
        raise ValueError(f"unknown ViT surgery {attention!r}; known: {', '.join(VIT_SURGERIES)}")
    surgery = VIT_SURGERIES[attention]
    keep_residual = surgery["residual"] if residual is None else residual
    x = vit_tokens_before_last_block(visual, images)
    block = visual.transformer.resblocks[-1]
    out = last_block_attention(block, x, surgery["attention"])
    if keep_residual:
        out = x + block.ls_1(out)
        out = out + block.ls_2(block.mlp(block.ln_2(out)))
    tokens = visual.ln_post(out[:, 1:])
    if visual.proj is not None:
        tokens = tokens @ visual.proj
    h, w = images.shape[-2] // visual.patch_size[0], images.shape[-1] // visual.patch_size[1]
    return tokens.transpose(1, 2).unflatten(2, (h, w))


def clip_to_imagenet(images: torch.Tensor) -> torch.Tensor:
    """CLIP-normalised images (N, 3, H, W) re-normalised with ImageNet's statistics, for a self-supervised encoder
    reading the same pixels (Trident `trident.py` `get_trident_seg`: `self.norm(self.unnorm(img))`; CLIP-DINOiser
    and DeCLIP feed DINO the same way)."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    def column(values) -> torch.Tensor:
        return torch.tensor(values, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)

    pixels = images * column(OPENAI_DATASET_STD) + column(OPENAI_DATASET_MEAN)
    return (pixels - column(IMAGENET_MEAN)) / column(IMAGENET_STD)


def ssl_patch_tokens(encoder: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A self-supervised timm ViT's last-layer patch tokens, after its final LayerNorm, at any input size.

    DINO `vision_transformer.py` `get_intermediate_layers(x, n=1)[0]` without the class token, as Trident
    (`get_trident_seg`) and DeCLIP (`src/training/declip.py`, `get_teacher_context_similarity`) read it. The patch
    part of the positional embedding is resampled bicubically to the input's grid (timm `resample_abs_pos_embed`, as
    DINO's `interpolate_pos_encoding`), so an official DINO checkpoint built at a fixed size reads larger inputs too;
    at the trained size this is the encoder's own `forward_tokens`.

    Args:
        encoder: a `models.tiny_ssl.SSLEncoder` (a timm VisionTransformer with one class token).
        images: (N, 3, H, W) images normalised with ImageNet's statistics, H and W multiples of the patch size.

    Returns:
        (N, D, H/p, W/p) patch tokens.
    """
    from timm.layers import resample_abs_pos_embed

    vit = encoder.vit
    if vit.num_prefix_tokens != 1 or getattr(vit, "no_embed_class", False):
        raise TypeError("ssl_patch_tokens expects a ViT with one class token that has its own positional embedding")
    x = vit.patch_embed.proj(images)
    grid = tuple(x.shape[-2:])
    x = vit.patch_embed.norm(x.flatten(2).transpose(1, 2))
    position = resample_abs_pos_embed(vit.pos_embed, new_size=list(grid), old_size=list(vit.patch_embed.grid_size),
                                      num_prefix_tokens=1)
    x = torch.cat([vit.cls_token.expand(len(x), -1, -1), x], dim=1) + position
    x = vit.norm(vit.blocks(vit.norm_pre(x)))
    return x[:, 1:].transpose(1, 2).unflatten(2, grid)


def project_tokens(visual: torch.nn.Module, token_map: torch.Tensor) -> torch.Tensor:
    """A ViT tower's last-block outputs (N, width, h, w), class token dropped, taken into the joint space per
    location: `ln_post`, then `@ proj` (open_clip `VisionTransformer.forward`; Trident's `VisionTransformer.forward`
    after `custom_attn`). For methods that rewrite the last block outside `vit_dense_features`. Returns (N, D, h, w)."""
    _check_vit(visual)
    x = visual.ln_post(token_map.flatten(2).transpose(1, 2))
    x = x @ visual.proj if visual.proj is not None else x
    return x.transpose(1, 2).unflatten(2, token_map.shape[-2:])
