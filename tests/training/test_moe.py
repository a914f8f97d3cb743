import copy

import numpy as np
import pytest
import torch
from clipbook.models.tiny_clip import TINY_CLIP_NAME, quiet_open_clip, register_tiny_configs
from clipbook.training import moe

TINY_VIT = {"embed_dim": 32,
            "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}


def _model(name, seed=0):
    import open_clip
    from open_clip import factory

    register_tiny_configs()
    factory._MODEL_CONFIGS.setdefault("clipbook-test-tiny-vit", TINY_VIT)
    torch.manual_seed(seed)
    with quiet_open_clip():
        return open_clip.create_model(name, pretrained=None).eval()


def _perturbed(model, seed):
    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in other.named_parameters():
            if ".mlp." in name:
                param.add_(0.05 * torch.randn(param.shape, generator=generator))
    return other


def _reference(layer, tokens):
    """Token by token in float64: softmax, top-k by sorting, renormalise, weighted sum."""
    out = []
    for h in tokens.double():
        p = torch.softmax(layer.gate.weight.double() @ h, dim=0)
        chosen = np.argsort(-p.numpy(), kind="stable")[:layer.top_k]
        total = float(p[chosen].sum())
        out.append(sum(float(p[e]) / total * copy.deepcopy(layer.experts[e]).double()(h) for e in chosen))
    return torch.stack(out)


def test_identical_experts_give_the_dense_model_in_both_towers():
    dense = _model("clipbook-test-tiny-vit")
    upcycled = moe.upcycle([dense] * 4, top_k=2).eval()
    assert len(moe.moe_layers(upcycled)) == 4  # two text and two image blocks
    tokens = torch.randint(1, 1000, (3, 16))
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(upcycled.encode_text(tokens), dense.encode_text(tokens), atol=1e-5)
        assert torch.allclose(upcycled.encode_image(images), dense.encode_image(images), atol=1e-5)


def test_resnet_image_tower_has_no_mlp_to_upcycle():
    tiny = _model(TINY_CLIP_NAME)
    assert [name for name, _ in moe.transformer_blocks(tiny, ("image",))] == []
    assert len(moe.transformer_blocks(tiny, ("text",))) == 2
    with pytest.raises(ValueError, match="no transformer MLPs"):
        moe.upcycle([tiny, tiny], towers=("image",))


def test_moe_layer_matches_a_per_token_loop_and_keeps_router_logits():
    dense = _model("clipbook-test-tiny-vit")
    copies = [dense] + [_perturbed(dense, s) for s in (1, 2, 3)]
    upcycled = moe.upcycle(copies, top_k=2, seed=5).eval()
    layer = moe.moe_layers(upcycled)[0]
    with torch.no_grad():
        layer.gate.weight.normal_(0, 1.0)  # a decisive router
        tokens = torch.randn(20, 64)
        assert torch.allclose(layer(tokens).double(), _reference(layer, tokens), atol=1e-5)
        assert layer.router_logits.shape == (20, 4)
        upcycled.encode_text(torch.randint(1, 1000, (3, 16)))
        upcycled.encode_image(torch.randn(2, 3, 32, 32))
    assert moe.router_logits(upcycled, "text").shape == (2 * 3 * 16, 4)
    assert moe.router_logits(upcycled, "image").shape == (2 * 2 * 5, 4)  # 2 layers, 2 images, 4 patches + class
    assert moe.router_logits(_model("clipbook-test-tiny-vit"), "text") is None  # a dense model has no router


def test_experts_come_from_each_copy_and_the_router_is_seeded():
    dense = _model("clipbook-test-tiny-vit")
    copies = [dense, _perturbed(dense, 1)]
    a, b = moe.upcycle(copies, seed=3), moe.upcycle(copies, seed=3)
    layer = dict(moe.transformer_blocks(a, ("text",)))["transformer.resblocks.1"].mlp
    assert torch.equal(layer.experts[1].c_fc.weight, copies[1].transformer.resblocks[1].mlp.c_fc.weight)
    assert torch.equal(layer.gate.weight, dict(moe.transformer_blocks(b, ("text",)))["transformer.resblocks.1"]
                       .mlp.gate.weight)
    assert torch.equal(a.state_dict()["positional_embedding"], dense.state_dict()["positional_embedding"])


def test_balancing_loss_is_top_k_for_a_uniform_router_and_matches_a_count():
    assert float(moe.load_balancing_loss(torch.zeros(100, 4), 2)) == pytest.approx(2.0, abs=1e-6)
    assert float(moe.load_balancing_loss(torch.zeros(7, 8), 3)) == pytest.approx(3.0, abs=1e-6)
    logits = torch.randn(500, 4, generator=torch.Generator().manual_seed(0)) + torch.tensor([1.5, 0, 0, 0])
    p = torch.softmax(logits.double(), -1)
    counts = np.zeros((2, 4))
    for row in p:
        for slot, e in enumerate(np.argsort(-row.numpy(), kind="stable")[:2]):
            counts[slot, e] += 1
    naive = 4 * np.sum(counts / 500 * p.mean(0).numpy()[None])
    value = float(moe.load_balancing_loss(logits, 2))
    assert value == pytest.approx(naive, abs=1e-5) and value > 2.05


def test_bad_arguments_fail_in_one_line():
    dense = _model("clipbook-test-tiny-vit")
    with pytest.raises(ValueError, match="top_k"):
        moe.upcycle([dense, dense], top_k=3)
    with pytest.raises(ValueError, match="at least two"):
        moe.upcycle([dense])
    with pytest.raises(ValueError, match="unknown tower"):
        moe.transformer_blocks(dense, ("audio",))


def test_released_checkpoint_errors_name_what_is_missing(tmp_path):
    moe.check_released_checkpoint("")
    with pytest.raises(moe.ReleasedCheckpointError, match="not found: download checkpoints_dc/moe-4-2.pt"):
        moe.check_released_checkpoint(str(tmp_path / "moe-4-2.pt"))
    (tmp_path / "moe-4-2.pt").write_bytes(b"x")
    with pytest.raises(moe.ReleasedCheckpointError, match="custom format"):
        moe.check_released_checkpoint(str(tmp_path / "moe-4-2.pt"))
    with pytest.raises(TypeError):
        moe.check_released_checkpoint(None)
