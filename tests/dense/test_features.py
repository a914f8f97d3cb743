import pytest
import torch
import torch.nn.functional as F
from clipbook.dense.features import dense_logits, maskclip_features
from clipbook.models.tiny_clip import TINY_CLIP_NAME, quiet_open_clip, register_tiny_configs
from clipbook.models.towers import resnet_trunk


@pytest.fixture(scope="module")
def visual():
    import open_clip

    register_tiny_configs()
    torch.manual_seed(0)
    with quiet_open_clip():
        return open_clip.create_model(TINY_CLIP_NAME, pretrained=None).visual.eval()


def test_value_path_equals_maskclips_one_by_one_convolutions(visual):
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = maskclip_features(visual, images)
        trunk = resnet_trunk(visual, images)
        pool = visual.attnpool
        v = F.conv2d(trunk, pool.v_proj.weight[:, :, None, None], pool.v_proj.bias)
        expected = F.conv2d(v, pool.c_proj.weight[:, :, None, None], pool.c_proj.bias)
    assert features.shape == (2, pool.c_proj.out_features, 4, 4)
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-5)


def test_on_a_uniform_map_the_attention_pool_is_the_value_path(visual):
    """When every location holds the same vector and the positional embedding is zero, every token the pool attends
    over is the same, so attention returns that token's value and the pooled output equals the value path at any
    location: the identity MaskCLIP's derivation rests on."""
    import copy

    pool = copy.deepcopy(visual.attnpool)
    pool.positional_embedding.data.zero_()
    trunk_map = torch.randn(3, pool.k_proj.in_features, 1, 1).expand(-1, -1, 2, 2)
    from clipbook.models.towers import attention_pool

    with torch.no_grad():
        pooled = attention_pool(pool, trunk_map)
        value_path = pool.c_proj(pool.v_proj(trunk_map[:, :, 0, 0]))
    torch.testing.assert_close(pooled, value_path, rtol=1e-4, atol=1e-5)


def test_dense_logits_are_cosines_and_resize_to_the_image():
    features = torch.randn(1, 4, 2, 2)
    texts = torch.randn(3, 4)
    logits = dense_logits(features, texts)
    expected = F.normalize(features[0, :, 1, 0], dim=0) @ F.normalize(texts, dim=-1).T
    torch.testing.assert_close(logits[0, :, 1, 0], expected)
    assert dense_logits(features, texts, size=(8, 8)).shape == (1, 3, 8, 8)


def test_a_tower_without_an_attention_pool_is_refused():
    with pytest.raises(TypeError, match="ModifiedResNet"):
        maskclip_features(torch.nn.Linear(2, 2), torch.zeros(1, 3, 64, 64))
