import pytest
import torch
import torch.nn.functional as F
from clipbook.dense.features import dense_logits, maskclip_features
from clipbook.models.tiny_clip import TINY_CLIP_VIT_NAME, random_tiny_clip
from clipbook.models.towers import resnet_trunk


@pytest.fixture(scope="module")
def visual():
    return random_tiny_clip(0).visual.eval()


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


@pytest.fixture(scope="module")
def vit():
    return random_tiny_clip(0, TINY_CLIP_VIT_NAME).visual.eval()


def test_vanilla_surgery_is_the_towers_own_forward(vit):
    from clipbook.dense.features import vit_dense_features

    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        dense = vit_dense_features(vit, images, "vanilla")
        vit.output_tokens = True
        try:
            _, tokens = vit(images)
        finally:
            vit.output_tokens = False
    torch.testing.assert_close(dense.flatten(2).transpose(1, 2), tokens @ vit.proj, rtol=1e-4, atol=1e-5)


def test_with_a_convolutional_stem_the_vanilla_surgery_is_still_the_towers_own_forward(monkeypatch):
    from clipbook.dense.features import vit_dense_features
    from clipbook.models import tiny_clip

    monkeypatch.setitem(tiny_clip.TINY_CLIP_STEMS, TINY_CLIP_VIT_NAME, {"channels": [8, 16, 32]})
    stemmed = random_tiny_clip(0, TINY_CLIP_VIT_NAME).visual.eval()
    assert isinstance(stemmed.conv1, torch.nn.Sequential)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        dense = vit_dense_features(stemmed, images, "vanilla")
        stemmed.output_tokens = True
        _, tokens = stemmed(images)
        assert vit_dense_features(stemmed, torch.zeros(1, 3, 128, 96), "clearclip").shape[-2:] == (16, 12)
    torch.testing.assert_close(dense.flatten(2).transpose(1, 2), tokens @ stemmed.proj, rtol=1e-4, atol=1e-5)


def test_maskclip_token_depends_only_on_its_own_input_token(vit):
    """Identity attention: changing one token entering the last block changes that token's output alone."""
    from clipbook.dense.features import last_block_attention

    block = vit.transformer.resblocks[-1]
    tokens = torch.randn(1, 65, vit.transformer.width, generator=torch.Generator().manual_seed(3))
    changed = tokens.clone()
    changed[0, 7] += torch.randn(vit.transformer.width, generator=torch.Generator().manual_seed(5))  # not a constant: ln_1 removes those
    with torch.no_grad():
        a, b = last_block_attention(block, tokens, "maskclip"), last_block_attention(block, changed, "maskclip")
        c, d = last_block_attention(block, tokens, "clearclip"), last_block_attention(block, changed, "clearclip")
    moved = (a - b).abs().amax(-1)[0]
    assert moved[7] > 1e-3 and torch.all(moved[torch.arange(65) != 7] == 0)
    assert ((c - d).abs().amax(-1)[0][torch.arange(65) != 7] > 0).any()  # q-q attention mixes tokens


def test_clearclip_and_sclip_weights_against_a_per_head_loop(vit):
    """The batched per-head attention equals a loop over heads written from the equations."""
    from clipbook.dense.features import last_block_attention

    block = vit.transformer.resblocks[-1]
    tokens = torch.randn(2, 10, vit.transformer.width, generator=torch.Generator().manual_seed(4))
    attn = block.attn
    with torch.no_grad():
        q, k, v = F.linear(block.ln_1(tokens), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        d = q.shape[-1] // attn.num_heads
        for name, weights_of in {"clearclip": lambda qh, kh: (qh @ qh.T / d ** 0.5).softmax(-1),
                                 "sclip": lambda qh, kh: (qh @ qh.T / d ** 0.5).softmax(-1) + (kh @ kh.T / d ** 0.5).softmax(-1),
                                 "vanilla": lambda qh, kh: (qh @ kh.T / d ** 0.5).softmax(-1)}.items():
            outs = []
            for n in range(2):
                per_head = [weights_of(q[n, :, h * d:(h + 1) * d], k[n, :, h * d:(h + 1) * d]) @ v[n, :, h * d:(h + 1) * d]
                            for h in range(attn.num_heads)]
                outs.append(attn.out_proj(torch.cat(per_head, -1)))
            torch.testing.assert_close(last_block_attention(block, tokens, name), torch.stack(outs), rtol=1e-4, atol=1e-5)


def test_larger_inputs_get_a_resized_positional_embedding_and_bad_names_fail(vit):
    from clipbook.dense.features import positional_embedding_for, vit_dense_features

    assert positional_embedding_for(vit, (8, 8)) is vit.positional_embedding
    assert positional_embedding_for(vit, (16, 12)).shape == (1 + 16 * 12, vit.transformer.width)
    with torch.no_grad():
        assert vit_dense_features(vit, torch.zeros(1, 3, 128, 96), "sclip").shape[-2:] == (16, 12)
    with pytest.raises(ValueError, match="unknown ViT surgery"):
        vit_dense_features(vit, torch.zeros(1, 3, 64, 64), "gem")


def test_clip_to_imagenet_renormalises_the_same_pixels():
    from clipbook.dense.features import clip_to_imagenet
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from torchvision.transforms import Normalize

    pixels = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    clip_normalised = Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)(pixels)
    expected = Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(pixels)
    torch.testing.assert_close(clip_to_imagenet(clip_normalised), expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def ssl_encoder():
    from clipbook.models.tiny_ssl import build_tiny_encoder

    torch.manual_seed(4)
    return build_tiny_encoder().eval()


def test_ssl_patch_tokens_at_the_trained_size_are_the_encoders_own(ssl_encoder):
    from clipbook.dense.features import ssl_patch_tokens

    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        tokens = ssl_patch_tokens(ssl_encoder, images)
        _, expected = ssl_encoder.forward_tokens(images)
    assert tokens.shape == (2, ssl_encoder.width, 8, 8)
    torch.testing.assert_close(tokens.flatten(2).transpose(1, 2), expected, rtol=1e-4, atol=1e-5)


def test_ssl_patch_tokens_at_a_larger_size_match_timms_dynamic_size_and_a_fixed_size_vit_reads_them(ssl_encoder):
    import timm.models.vision_transformer as timm_vit
    from clipbook.dense.features import ssl_patch_tokens
    from clipbook.models.tiny_ssl import SSLEncoder

    images = torch.randn(2, 3, 128, 96, generator=torch.Generator().manual_seed(6))
    vit = ssl_encoder.vit
    fixed = timm_vit.VisionTransformer(img_size=64, patch_size=8, embed_dim=vit.embed_dim, depth=len(vit.blocks),
                                       num_heads=vit.blocks[0].attn.num_heads, num_classes=0, global_pool="token",
                                       mlp_ratio=vit.blocks[0].mlp.fc1.out_features / vit.embed_dim)
    fixed.load_state_dict(vit.state_dict())
    with torch.no_grad():
        tokens = ssl_patch_tokens(ssl_encoder, images)
        _, dynamic = ssl_encoder.forward_tokens(images)  # timm's own resampling (dynamic_img_size=True)
        from_fixed = ssl_patch_tokens(SSLEncoder(fixed.eval()), images)
    assert tokens.shape[-2:] == (16, 12)
    torch.testing.assert_close(tokens.flatten(2).transpose(1, 2), dynamic, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(from_fixed, tokens, rtol=1e-4, atol=1e-5)


def test_project_tokens_is_the_towers_own_output_projection(vit):
    from clipbook.dense.features import project_tokens, vit_tokens_before_last_block

    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        last = vit.transformer.resblocks[-1](vit_tokens_before_last_block(vit, images))[:, 1:]
        projected = project_tokens(vit, last.transpose(1, 2).unflatten(2, (8, 8)))
        vit.output_tokens = True
        try:
            _, tokens = vit(images)
        finally:
            vit.output_tokens = False
    torch.testing.assert_close(projected.flatten(2).transpose(1, 2), tokens @ vit.proj, rtol=1e-4, atol=1e-5)
