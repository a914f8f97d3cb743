import torch
import torch.nn.functional as F
from open_clip.modified_resnet import AttentionPool2d, ModifiedResNet

from clipbook.models import towers


def _pool_with_fused_attention(pool, feature_map, extra):
    """The pool as open_clip writes it (all queries, fused multi-head attention), extra tokens appended."""
    x = feature_map.flatten(2).permute(2, 0, 1)  # (HW, N, C)
    x = torch.cat([x.mean(dim=0, keepdim=True), x]) + pool.positional_embedding[:, None, :]
    x = torch.cat([x, extra.transpose(0, 1).expand(-1, x.shape[1], -1)])
    out, _ = F.multi_head_attention_forward(
        query=x, key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight,
        in_proj_weight=None, in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0, out_proj_weight=pool.c_proj.weight,
        out_proj_bias=pool.c_proj.bias, use_separate_proj_weight=True, training=False, need_weights=False)
    return out[0]


def test_attention_pool_equals_open_clips_and_extra_tokens_act_as_keys_and_values():
    torch.manual_seed(0)
    pool = AttentionPool2d(spacial_dim=2, embed_dim=32, num_heads=4, output_dim=16).eval()
    feature_map, extra = torch.randn(5, 32, 2, 2), torch.randn(1, 3, 32)
    with torch.no_grad():
        assert torch.allclose(towers.attention_pool(pool, feature_map), pool(feature_map), atol=1e-5)
        with_extra = towers.attention_pool(pool, feature_map, extra)
        assert torch.allclose(with_extra, _pool_with_fused_attention(pool, feature_map, extra), atol=1e-5)
        assert not torch.allclose(with_extra, pool(feature_map), atol=1e-3)


def test_trunk_then_pool_is_the_whole_resnet_tower():
    torch.manual_seed(0)
    visual = ModifiedResNet(layers=[1, 1, 1, 1], output_dim=16, heads=2, image_size=64, width=8).eval()
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        trunk = towers.resnet_trunk(visual, images)
        assert trunk.shape == (3, 256, 2, 2)
        assert torch.allclose(towers.attention_pool(visual.attnpool, trunk), visual(images), atol=1e-5)


def test_resnet_stages_end_at_the_trunk_and_halve_the_resolution():
    torch.manual_seed(0)
    visual = ModifiedResNet(layers=[1, 1, 1, 1], output_dim=16, heads=2, image_size=64, width=8).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        maps = towers.resnet_stages(visual, images)
        assert [m.shape[-1] for m in maps] == [16, 8, 4, 2]
        assert torch.equal(maps[-1], towers.resnet_trunk(visual, images))


def test_vit_block_maps_match_timms_intermediate_layers_and_forward_features():
    import timm

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32, depth=3).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        maps = towers.vit_block_maps(vit, images)
        assert [tuple(m.shape) for m in maps] == [(2, 192, 2, 2)] * 3
        final = vit.forward_features(images)[:, vit.num_prefix_tokens:]
        assert torch.allclose(maps[-1].flatten(2).transpose(1, 2), final, atol=1e-5)
        # timm's own extractor (raw block outputs, reshaped to maps) for the earlier blocks
        theirs = vit.forward_intermediates(images, indices=3, norm=False, intermediates_only=True)
        for ours, ref in zip(maps[:-1], theirs[:-1]):
            assert torch.allclose(ours, ref, atol=1e-5)
