import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from clipbook.models import svd


def _attention_inputs(batch_first: bool, batch=3, length=5, width=16):
    torch.manual_seed(0)
    x = torch.randn(batch, length, width)
    return x if batch_first else x.transpose(0, 1)


@pytest.mark.parametrize("batch_first", [True, False])
def test_split_attention_reproduces_multihead_attention_with_masks(batch_first):
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    split = svd.SplitMultiheadAttention.from_multihead_attention(attention).eval()
    x = _attention_inputs(batch_first)
    causal = torch.full((5, 5), float("-inf")).triu(1)
    padding = torch.tensor([[False] * 5, [False] * 3 + [True] * 2, [False] * 4 + [True]])
    additive_padding = torch.zeros(padding.shape).masked_fill(padding, float("-inf"))
    for kwargs in ({}, {"attn_mask": causal}, {"attn_mask": causal.isinf()}, {"key_padding_mask": padding},
                   {"attn_mask": causal, "key_padding_mask": additive_padding}):
        expected = attention(x, x, x, need_weights=False, **kwargs)[0]
        torch.testing.assert_close(split(x, x, x, need_weights=False, **kwargs)[0], expected, atol=1e-6, rtol=1e-5)


def test_split_attention_copies_weights_and_rejects_unsupported_layers():
    attention = nn.MultiheadAttention(16, 4)
    split = svd.SplitMultiheadAttention.from_multihead_attention(attention)
    fused = torch.cat([split.q_proj.weight, split.k_proj.weight, split.v_proj.weight])
    assert torch.equal(fused, attention.in_proj_weight)
    assert torch.equal(split.out_proj.weight, attention.out_proj.weight)
    with pytest.raises(ValueError, match="equal q/k/v widths"):
        svd.SplitMultiheadAttention.from_multihead_attention(nn.MultiheadAttention(16, 4, kdim=8, vdim=8))
    with pytest.raises(NotImplementedError):
        split(torch.zeros(2, 1, 16), torch.zeros(2, 1, 16), torch.zeros(2, 1, 16), need_weights=True)


@pytest.mark.parametrize("shape", [(12, 7), (7, 12), (9, 9)])
def test_singular_value_linear_is_exact_and_trains_only_sigma(shape):
    torch.manual_seed(0)
    linear = nn.Linear(shape[1], shape[0])
    wrapped = svd.SingularValueLinear.from_linear(linear)
    x = torch.randn(4, shape[1])
    torch.testing.assert_close(wrapped(x), linear(x), atol=1e-6, rtol=1e-6)
    assert wrapped.singular_values.shape == (min(shape),)
    assert [name for name, p in wrapped.named_parameters() if p.requires_grad] == ["singular_values"]
    wrapped(x).sum().backward()
    assert wrapped.singular_values.grad is not None and wrapped.left.grad is None


def test_split_attention_pool_reproduces_open_clip_attention_pool():
    from open_clip.modified_resnet import AttentionPool2d

    torch.manual_seed(0)
    pool = AttentionPool2d(spacial_dim=2, embed_dim=32, num_heads=4, output_dim=16).eval()
    x = torch.randn(3, 32, 2, 2)
    split = svd.SplitAttentionPool(pool)
    torch.testing.assert_close(split(x), pool(x), atol=1e-6, rtol=1e-5)
    model = nn.Sequential(copy.deepcopy(pool))
    assert svd.split_attention_pools(model) == ["0"] and isinstance(model[0], svd.SplitAttentionPool)


@pytest.mark.parametrize("split_pool", [False, True])
def test_factorize_linears_keeps_the_clip_outputs_and_counts_sigma(random_tiny_clip, split_pool):
    model = copy.deepcopy(random_tiny_clip.model).eval()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    tokens = random_tiny_clip.tokenizer(["a photo of a circle.", "a photo of a star."])
    with torch.no_grad():
        before = model.encode_image(images), model.encode_text(tokens)
    split = svd.split_multihead_attention(model)
    if split_pool:
        assert svd.split_attention_pools(model) == ["visual.attnpool"]
    wrapped = svd.factorize_linears(model)
    assert split == ["transformer.resblocks.0.attn", "transformer.resblocks.1.attn"]
    # unsplit, the ModifiedResNet attention pool reads q_proj.weight directly: the property stands in for it
    assert {"visual.attnpool.q_proj", "visual.attnpool.c_proj", "transformer.resblocks.1.attn.q_proj",
            "transformer.resblocks.1.mlp.c_fc"} <= set(wrapped)
    assert not any(isinstance(m, (nn.Linear, nn.MultiheadAttention)) for m in model.modules())
    with torch.no_grad():
        after = model.encode_image(images), model.encode_text(tokens)
    for old, new in zip(before, after):
        assert (F.normalize(old, dim=-1) - F.normalize(new, dim=-1)).abs().max() < 1e-5
    trainable = [p for p in model.parameters() if p.requires_grad]
    expected = sum(min(m.in_features, m.out_features) for m in model.modules()
                   if isinstance(m, svd.SingularValueLinear))
    assert sum(p.numel() for p in trainable) == expected
    assert {id(p) for p in trainable} == {id(p) for p in svd.singular_value_parameters(model)}
    image_features = model.encode_image(images)
    image_features.sum().backward()
    assert model.visual.attnpool.q_proj.singular_values.grad is not None
