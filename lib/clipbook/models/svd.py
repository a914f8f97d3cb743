"""Singular-value reparametrisation of a model's Linear layers (model surgery for SVD fine-tuning).

Every `nn.Linear` with weight W ∈ ℝ^{m×n} becomes W = U·diag(σ)·Vᵀ at full rank r = min(m, n), with U,
V and the bias frozen and only σ trainable; `nn.MultiheadAttention` is first split into explicit
q/k/v/out Linears so its fused `in_proj_weight` is factorised per projection. This is the
parametrisation of CLIP-SVD (Koleilat, Rivaz, Xiao 2025, arXiv:2509.03740, Sec. 3;
HealthX-Lab/CLIP-SVD `svf_utils/PlainHeadAttention.py`, `svf_utils/svf_torch.py`) and of SVF-style
singular-value fine-tuning in general.

    split_multihead_attention(model)      # nn.MultiheadAttention -> SplitMultiheadAttention
    split_attention_pools(model)          # open_clip ModifiedResNet AttentionPool2d -> SplitAttentionPool
    names = factorize_linears(model)      # nn.Linear -> SingularValueLinear (σ trainable, rest frozen)

A `SingularValueLinear` runs factorised, x ↦ ((x V) ⊙ σ) Uᵀ + b, as the official `SVD_Linear`; it also
exposes `weight` and `bias` like `nn.Linear`, so code that reads a layer's weight directly (open_clip's
ModifiedResNet attention pool passes `q_proj.weight` to `F.multi_head_attention_forward`) sees the
reparametrised weight and back-propagates into σ. `split_attention_pools` rewrites that pool to call its
projections as modules instead, which is cheaper.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from clipbook.models.towers import attention_pool


class SingularValueLinear(nn.Module):
    """A Linear layer whose weight is U·diag(σ)·Vᵀ; σ is the only trainable tensor.

    Attributes:
        left: U, (out_features, r), frozen.
        singular_values: σ, (r,), trainable.
        right: Vᵀ, (r, in_features), frozen.
        bias: the original bias (out_features,) or None, frozen.
    """

    def __init__(self, left: torch.Tensor, singular_values: torch.Tensor, right: torch.Tensor,
                 bias: torch.Tensor | None = None):
        super().__init__()
        self.left = nn.Parameter(left, requires_grad=False)
        self.singular_values = nn.Parameter(singular_values)
        self.right = nn.Parameter(right, requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        self.out_features, self.in_features = left.shape[0], right.shape[1]

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "SingularValueLinear":
        """Factorise a Linear exactly: the SVD runs in float64, then U, σ, Vᵀ are cast to its dtype.

        Args:
            linear: the layer to replace; its weight is not modified.

        Returns:
            A SingularValueLinear computing the same function (up to float rounding).
        """
        weight = linear.weight.detach()
        left, singular_values, right = torch.linalg.svd(weight.double(), full_matrices=False)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(left.to(weight.dtype), singular_values.to(weight.dtype), right.to(weight.dtype), bias)

    @property
    def weight(self) -> torch.Tensor:
        return (self.left * self.singular_values) @ self.right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(x, self.right) * self.singular_values, self.left, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"rank={self.singular_values.numel()}, bias={self.bias is not None}")


class SplitMultiheadAttention(nn.Module):
    """`nn.MultiheadAttention` with separate q/k/v/out `nn.Linear`s (same call signature and outputs).

    Only self- and cross-attention with equal q/k/v widths (`_qkv_same_embed_dim`, no bias_k/bias_v,
    no add_zero_attn) are supported, which covers CLIP's text and ViT towers. Attention weights are not
    returned: the second output is always None.
    """

    def __init__(self, embed_dim: int, num_heads: int, *, bias: bool = True, dropout: float = 0.0,
                 batch_first: bool = False):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    @classmethod
    def from_multihead_attention(cls, attention: nn.MultiheadAttention) -> "SplitMultiheadAttention":
        """Copy the fused `in_proj_weight` rows [q; k; v] and `out_proj` into separate Linears.

        Args:
            attention: a self/cross-attention layer with equal q/k/v widths.

        Returns:
            A SplitMultiheadAttention on the same device and dtype, computing the same outputs.
        """
        if not attention._qkv_same_embed_dim or attention.bias_k is not None or attention.add_zero_attn:
            raise ValueError("only nn.MultiheadAttention with equal q/k/v widths, no bias_k/bias_v and "
                             "add_zero_attn=False can be split")
        split = cls(attention.embed_dim, attention.num_heads, bias=attention.in_proj_bias is not None,
                    dropout=attention.dropout, batch_first=attention.batch_first)
        split.to(device=attention.in_proj_weight.device, dtype=attention.in_proj_weight.dtype)
        weights = attention.in_proj_weight.detach().chunk(3)
        biases = attention.in_proj_bias.detach().chunk(3) if attention.in_proj_bias is not None else (None,) * 3
        with torch.no_grad():
            for linear, weight, bias in zip((split.q_proj, split.k_proj, split.v_proj), weights, biases):
                linear.weight.copy_(weight)
                if bias is not None:
                    linear.bias.copy_(bias)
            split.out_proj.weight.copy_(attention.out_proj.weight)
            if split.out_proj.bias is not None:
                split.out_proj.bias.copy_(attention.out_proj.bias)
        return split

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (N, L, E) -> (N, H, L, D)
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = False,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, None]:
        if need_weights:
            raise NotImplementedError("SplitMultiheadAttention does not return attention weights")
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = (x.unsqueeze(0 if self.batch_first else 1) for x in (query, key, value))
        if not self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        batch, target_len, source_len = query.shape[0], query.shape[1], key.shape[1]
        mask = _additive_mask(attn_mask, query.dtype)  # None, (L, S) or (N*H, L, S)
        if mask is not None and mask.dim() == 3:
            mask = mask.view(batch, self.num_heads, target_len, source_len)
        padding = _additive_mask(key_padding_mask, query.dtype)
        if padding is not None:
            padding = padding.view(batch, 1, 1, source_len)
            mask = padding if mask is None else mask + padding
        output = F.scaled_dot_product_attention(
            self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), self._heads(self.v_proj(value)),
            attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal and mask is None)
        output = self.out_proj(output.transpose(1, 2).flatten(2))
        if not self.batch_first:
            output = output.transpose(0, 1)
        if unbatched:
            output = output.squeeze(0 if self.batch_first else 1)
        return output, None


class SplitAttentionPool(nn.Module):
    """open_clip's ModifiedResNet `AttentionPool2d` with its q/k/v/c projections called as modules.

    The pool returns only the output of its first token (the spatial mean), so only that token's query
    and output projection are computed; the result equals `AttentionPool2d.forward`.
    """

    def __init__(self, pool: nn.Module):
        super().__init__()
        self.positional_embedding = pool.positional_embedding
        self.q_proj, self.k_proj, self.v_proj, self.c_proj = pool.q_proj, pool.k_proj, pool.v_proj, pool.c_proj
        self.num_heads = pool.num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return attention_pool(self, x)


def _additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """nn.MultiheadAttention's masks (bool: True = blocked; float: added) as a float mask to add."""
    if mask is None or mask.dtype != torch.bool:
        return None if mask is None else mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))


def _replace(model: nn.Module, kind: type, build) -> list[str]:
    names = [name for name, module in model.named_modules() if isinstance(module, kind)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, build(getattr(parent, child)))
    return names


def split_multihead_attention(model: nn.Module) -> list[str]:
    """Replace, in place, every `nn.MultiheadAttention` of `model` by a `SplitMultiheadAttention`.

    Args:
        model: any module (e.g. an open_clip CLIP).

    Returns:
        The dotted names of the replaced modules.
    """
    return _replace(model, nn.MultiheadAttention, SplitMultiheadAttention.from_multihead_attention)


def split_attention_pools(model: nn.Module) -> list[str]:
    """Replace, in place, every open_clip ModifiedResNet `AttentionPool2d` by a `SplitAttentionPool`.

    Args:
        model: any module (e.g. an open_clip CLIP with a ModifiedResNet image tower).

    Returns:
        The dotted names of the replaced modules.
    """
    from open_clip.modified_resnet import AttentionPool2d

    return _replace(model, AttentionPool2d, SplitAttentionPool)


def factorize_linears(model: nn.Module, *, freeze_others: bool = True) -> list[str]:
    """Replace, in place, every `nn.Linear` of `model` by a full-rank `SingularValueLinear`.

    Call `split_multihead_attention` first: `nn.MultiheadAttention` keeps its fused q/k/v weight
    outside any `nn.Linear` (its `out_proj` alone would be wrapped).

    Args:
        model: any module.
        freeze_others: also set `requires_grad=False` on every parameter that is not a σ, so the
            singular values are the model's only trainable parameters (CLIP-SVD's setting).

    Returns:
        The dotted names of the wrapped layers; their σ count is Σ min(m, n).
    """
    if freeze_others:
        model.requires_grad_(False)
    return _replace(model, nn.Linear, SingularValueLinear.from_linear)


def singular_value_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The σ vectors of every `SingularValueLinear` in `model`, in module order."""
    return [module.singular_values for module in model.modules() if isinstance(module, SingularValueLinear)]
