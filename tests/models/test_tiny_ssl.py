import math

import pytest
import torch
import torch.nn.functional as F

from clipbook import features
from clipbook.data import registry
from clipbook.models import tiny_ssl
from clipbook.models.loader import MissingCheckpointError, UnknownModelError
from clipbook.toyworld import splits

QUICK = {"split": "unit-test-ssl-pretrain", "epochs": 1, "batch_size": 16, "local_crops_number": 1}


@pytest.fixture(autouse=True)
def small_pretrain_split():
    splits.register_split("unit-test-ssl-pretrain", domain="photo", size=32, home_background_p=0.3)


def _images(n=6, size=64, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_encoder_returns_cls_and_patch_tokens_at_global_and_local_sizes():
    torch.manual_seed(0)
    encoder = tiny_ssl.build_tiny_encoder().eval()
    with torch.no_grad():
        cls, patches = encoder.forward_tokens(_images(2))
        local_cls = encoder.encode_image(_images(2, size=32))
    assert cls.shape == (2, 128) and patches.shape == (2, 64, 128)  # an 8 x 8 grid of 8 px patches
    assert local_cls.shape == (2, 128)
    assert torch.equal(encoder(_images(2)), cls)


def test_last_block_qkv_rebuild_the_blocks_own_output():
    torch.manual_seed(0)
    encoder = tiny_ssl.build_tiny_encoder().eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        parts = encoder.last_block_qkv(images)
        heads, length = encoder.vit.blocks[-1].attn.num_heads, 1 + 64
        assert parts["attention"].shape == (2, heads, length, length)
        assert torch.allclose(parts["attention"].sum(-1), torch.ones(2, heads, length), atol=1e-5)
        # an independent formulation: a per-head loop over the equation, then the block's residual and MLP
        # (timm's Block.forward) and the final norm must give forward_tokens' output
        last = encoder.vit.blocks[-1]
        d = parts["v"].shape[-1] // heads
        mixed = torch.cat([torch.softmax(parts["q"][..., h * d:(h + 1) * d] @ parts["k"][..., h * d:(h + 1) * d]
                                         .transpose(1, 2) / math.sqrt(d), dim=-1) @ parts["v"][..., h * d:(h + 1) * d]
                           for h in range(heads)], dim=-1)
        x = encoder.vit.norm_pre(encoder.vit._pos_embed(encoder.vit.patch_embed(images)))
        for block in encoder.vit.blocks[:-1]:
            x = block(x)
        x = x + last.attn.proj(mixed)
        x = encoder.vit.norm(x + last.mlp(last.norm2(x)))
        cls, patches = encoder.forward_tokens(images)
    assert torch.allclose(x[:, 0], cls, atol=1e-5) and torch.allclose(x[:, 1:], patches, atol=1e-5)


def test_crop_of_the_whole_image_without_flip_is_the_identity():
    images = _images()
    out = tiny_ssl.random_resized_crop(images, 64, (1.0, 1.0), torch.Generator().manual_seed(0), flip=False)
    assert torch.allclose(out, images, atol=1e-5)
    local = tiny_ssl.random_resized_crop(images, 32, (0.05, 0.4), torch.Generator().manual_seed(0))
    assert local.shape == (6, 3, 32, 32) and local.min() >= 0 and local.max() <= 1


def test_colour_ops_are_identities_when_off_and_hue_rotates_primaries():
    images, generator = _images(), torch.Generator().manual_seed(0)
    assert torch.equal(tiny_ssl.colour_jitter(images, generator, 0.4, 0.4, 0.2, 0.1, p=0.0), images)
    assert torch.allclose(tiny_ssl._shift_hue(images, torch.zeros(6)), images, atol=1e-5)
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    green = tiny_ssl._shift_hue(red, torch.tensor([1 / 3]))
    assert torch.allclose(green[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)


def test_blur_is_identity_when_off_and_keeps_a_flat_image_flat():
    images, generator = _images(), torch.Generator().manual_seed(0)
    assert torch.allclose(tiny_ssl.gaussian_blur(images, generator, (0.1, 2.0), p=0.0), images, atol=1e-6)
    flat = torch.full((2, 3, 16, 16), 0.3)
    assert torch.allclose(tiny_ssl.gaussian_blur(flat, generator, (0.5, 2.0), p=1.0), flat, atol=1e-6)
    blurred = tiny_ssl.gaussian_blur(images, generator, (1.0, 2.0), p=1.0)
    assert blurred.std() < images.std()


def test_multi_crop_follows_the_recipe_and_is_reproducible():
    images = _images()
    crops = tiny_ssl.multi_crop(images, tiny_ssl.PRETRAIN, torch.Generator().manual_seed(3))
    again = tiny_ssl.multi_crop(images, tiny_ssl.PRETRAIN, torch.Generator().manual_seed(3))
    assert [c.shape[-1] for c in crops] == [64, 64] + [32] * tiny_ssl.PRETRAIN["local_crops_number"]
    assert all(torch.equal(a, b) for a, b in zip(crops, again))


def test_dino_loss_matches_a_direct_formulation_and_updates_the_centre():
    torch.manual_seed(0)
    n_crops, batch, dim = 4, 5, 7
    student, teacher = torch.randn(n_crops * batch, dim), torch.randn(2 * batch, dim)
    loss_fn = tiny_ssl.DINOLoss(dim, student_temp=0.1, center_momentum=0.9)
    loss_fn.center.fill_(0.2)
    loss = loss_fn(student, teacher, n_crops, teacher_temp=0.04)
    terms = []
    for t in range(2):
        q = F.softmax((teacher[t * batch:(t + 1) * batch] - 0.2) / 0.04, dim=-1)
        for s in range(n_crops):
            if s != t:
                log_p = F.log_softmax(student[s * batch:(s + 1) * batch] / 0.1, dim=-1)
                terms.append(-(q * log_p).sum(-1).mean())
    assert torch.allclose(loss, torch.stack(terms).mean(), atol=1e-6)
    assert torch.allclose(loss_fn.center, 0.9 * 0.2 + 0.1 * teacher.mean(0, keepdim=True), atol=1e-6)


def test_knn_accuracy_on_separated_clusters_is_perfect_and_chunking_changes_nothing():
    generator = torch.Generator().manual_seed(0)
    centres = torch.eye(3) * 10
    train = torch.cat([centres + 0.1 * torch.randn(3, 3, generator=generator) for _ in range(5)])
    labels = torch.arange(3).repeat(5)
    assert tiny_ssl.knn_accuracy(train, labels, centres, torch.arange(3), k=5) == 100.0
    test, test_labels = torch.randn(7, 3, generator=generator), torch.randint(3, (7,), generator=generator)
    assert (tiny_ssl.knn_accuracy(train, labels, test, test_labels, k=4)
            == tiny_ssl.knn_accuracy(train, labels, test, test_labels, k=4, chunk_size=2))


def test_pretraining_is_bit_reproducible_and_the_seed_matters(state_digest):
    first = tiny_ssl.pretrain(QUICK, show_progress=False)
    second = tiny_ssl.pretrain(QUICK, show_progress=False)
    assert state_digest(first["state_dict"]) == state_digest(second["state_dict"])
    assert len(first["loss"]) == 2 and all(math.isfinite(v) for v in first["loss"])
    other_seed = tiny_ssl.pretrain({**QUICK, "seed": 1}, show_progress=False)
    assert state_digest(other_seed["state_dict"]) != state_digest(first["state_dict"])


def test_checkpoint_loads_as_a_feature_encoder_keyed_by_its_recipe(cache_root):
    assert tiny_ssl.checkpoint_key({**QUICK, "seed": 5}) != tiny_ssl.checkpoint_key(QUICK)
    loaded = tiny_ssl.load_ssl_encoder(recipe=QUICK, show_progress=False)
    assert loaded.identity == {"name": tiny_ssl.TINY_SSL_NAME, "weights": f"toyworld:{tiny_ssl.TINY_SSL_NAME}-"
                               f"{tiny_ssl.checkpoint_key(QUICK)}"}
    dataset = registry.load_dataset("toy", "unit-test-ssl-pretrain")
    encoded = features.image_features(loaded, dataset, indices=[0, 1, 2], normalize=False)
    with torch.no_grad():
        direct = loaded.model.encode_image(torch.stack([loaded.preprocess(dataset[i][0]) for i in range(3)]))
    assert encoded.shape == (3, 128) and torch.allclose(encoded, direct, atol=1e-5)


def test_unknown_and_missing_encoders_fail_with_what_to_do(monkeypatch, tmp_path):
    with pytest.raises(UnknownModelError, match="unknown self-supervised encoder 'dino'; known: .*dino_vitb16"):
        tiny_ssl.load_ssl_encoder("dino")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(MissingCheckpointError, match="timm/vit_base_patch16_224.dino") as err:
        tiny_ssl.check_ssl_available("dino_vitb16")
    assert "timm.create_model('vit_base_patch16_224.dino', pretrained=True)" in str(err.value)


def test_rehearsal_builds_the_official_dino_architecture_at_seeded_random_init(monkeypatch):
    monkeypatch.setenv("CLIPBOOK_PROFILE", "rehearsal")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # and no DINO weights on disk: never read
    first, second = tiny_ssl.load_ssl_encoder("dino_vitb16"), tiny_ssl.load_ssl_encoder("dino_vitb16")
    assert first.identity == second.identity and first.identity["weights"].startswith("random-init")
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()))
    assert sum(p.numel() for p in first.model.parameters()) > 80e6  # ViT-B/16, not a smaller stand-in


def test_knn_accuracy_with_fewer_training_images_than_neighbours_uses_them_all():
    train, labels = torch.eye(3), torch.arange(3)  # 3 training images, k = 20 by default (DINO's)
    assert tiny_ssl.knn_accuracy(train, labels, torch.eye(3), torch.arange(3)) == 100.0
