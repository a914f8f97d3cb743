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


def test_attention_pool_tokens_first_output_is_the_pool_and_every_location_gets_a_token():
    torch.manual_seed(1)
    pool = AttentionPool2d(spacial_dim=2, embed_dim=32, num_heads=4, output_dim=16).eval()
    feature_map = torch.randn(3, 32, 2, 2)
    with torch.no_grad():
        tokens = towers.attention_pool_tokens(pool, feature_map)
        assert tokens.shape == (3, 5, 16)
        torch.testing.assert_close(tokens[:, 0], pool(feature_map), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(tokens[:, 1], tokens[:, 2], atol=1e-3)


def test_on_a_larger_grid_the_pool_reads_a_resized_positional_embedding():
    torch.manual_seed(2)
    pool = AttentionPool2d(spacial_dim=2, embed_dim=32, num_heads=4, output_dim=16).eval()
    assert towers.pool_positional_embedding(pool, (2, 2)) is pool.positional_embedding
    with torch.no_grad():
        constant = AttentionPool2d(spacial_dim=2, embed_dim=32, num_heads=4, output_dim=16)
        constant.positional_embedding.copy_(torch.arange(32.0).expand(5, 32))
        resized = towers.pool_positional_embedding(constant, (4, 3))
        assert resized.shape == (13, 32)
        torch.testing.assert_close(resized, torch.arange(32.0).expand(13, 32))  # bicubic keeps a constant field
        larger = AttentionPool2d(spacial_dim=4, embed_dim=32, num_heads=4, output_dim=16).eval()
        larger.load_state_dict({**pool.state_dict(),
                                "positional_embedding": towers.pool_positional_embedding(pool, (4, 4))})
        feature_map = torch.randn(3, 32, 4, 4)
        expected = larger(feature_map)  # open_clip's own pool, built at the larger grid
        torch.testing.assert_close(towers.attention_pool(pool, feature_map), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(towers.attention_pool_tokens(pool, feature_map)[:, 0], expected, rtol=1e-5,
                                   atol=1e-5)
