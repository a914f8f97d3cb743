
import pytest
import torch

from clipbook.models import tiny_clip
from clipbook.toyworld import splits

QUICK = {"split": "unit-test-pretrain", "epochs": 3, "batch_size": 32, "warmup_steps": 2, "lr": 1e-3}


@pytest.fixture(autouse=True)
def small_pretrain_split():
    splits.register_split("unit-test-pretrain", domain="photo", size=128, home_background_p=0.3)


def test_config_is_registered_with_open_clip():
    import open_clip

    tiny_clip.register_tiny_configs()
    assert tiny_clip.TINY_CLIP_NAME in open_clip.list_models()
    model = open_clip.create_model(tiny_clip.TINY_CLIP_NAME)
    assert model.visual.image_size == (64, 64) or model.visual.image_size == 64


def test_pretraining_is_bit_reproducible_and_lowers_the_loss(state_digest):
    first = tiny_clip.pretrain(QUICK, show_progress=False)
    second = tiny_clip.pretrain(QUICK, show_progress=False)
    assert state_digest(first["state_dict"]) == state_digest(second["state_dict"])
    assert sum(first["loss"][-3:]) < sum(first["loss"][:3])
    other_seed = tiny_clip.pretrain({**QUICK, "seed": 1}, show_progress=False)
    assert state_digest(other_seed["state_dict"]) != state_digest(first["state_dict"])


def test_checkpoint_holds_this_modules_pretraining_under_its_key(cache_root):
    path = tiny_clip.tiny_clip_checkpoint(QUICK, show_progress=False)
    stored = torch.load(path, weights_only=True)
    assert stored["key"] == tiny_clip.checkpoint_key(QUICK) and tiny_clip.TINY_CLIP_NAME in path
    assert stored["recipe"] == {**tiny_clip.PRETRAIN, **QUICK} and len(stored["loss"]) > 0


def test_the_vit_tower_trains_by_its_own_recipe_under_its_own_key(cache_root, state_digest):
    path = tiny_clip.tiny_clip_vit_checkpoint(QUICK, show_progress=False)
    stored = torch.load(path, weights_only=True)
    assert tiny_clip.TINY_CLIP_VIT_NAME in path and stored["key"] == tiny_clip.checkpoint_key(QUICK, tiny_clip.TINY_CLIP_VIT_NAME)
    assert stored["key"] != tiny_clip.checkpoint_key(QUICK)
    assert "visual.transformer.resblocks.0.attn.in_proj_weight" in stored["state_dict"]
    assert "visual.conv1.0.weight" in stored["state_dict"]  # its convolutional stem (TINY_CLIP_STEMS)
    assert stored["recipe"] == {**tiny_clip.PRETRAIN_VIT, **QUICK}
    assert sum(stored["loss"][-3:]) < sum(stored["loss"][:3])
    with pytest.raises(KeyError, match="unknown tiny CLIP"):
        tiny_clip.checkpoint_key(QUICK, "clipbook-tiny-vit-h")


def test_a_vit_stem_makes_the_patch_grid_and_keys_its_own_checkpoint(monkeypatch, cache_root):
    from clipbook.models.loader import load_model  # noqa: F401  (the loader's stem path is exercised below)

    stem = tiny_clip.conv_stem([8, 16, 32], width=128, patch_size=8)
    assert stem(torch.zeros(2, 3, 64, 64)).shape == (2, 128, 8, 8)
    with pytest.raises(ValueError, match="cannot make 16-px patches"):
        tiny_clip.conv_stem([8, 16, 32], width=128, patch_size=16)
    plain = tiny_clip.checkpoint_key(QUICK, tiny_clip.TINY_CLIP_VIT_NAME)
    monkeypatch.setitem(tiny_clip.TINY_CLIP_STEMS, tiny_clip.TINY_CLIP_VIT_NAME, {"channels": [8, 16, 32]})
    assert tiny_clip.checkpoint_key(QUICK, tiny_clip.TINY_CLIP_VIT_NAME) != plain
    path = tiny_clip.tiny_clip_vit_checkpoint(QUICK, show_progress=False)
    stored = torch.load(path, weights_only=True)["state_dict"]
    assert "visual.conv1.0.weight" in stored and "visual.conv1.1.running_mean" in stored
    loaded = tiny_clip.load_tiny_clip(path, tiny_clip.TINY_CLIP_VIT_NAME)
    assert not loaded.training
    assert all(torch.equal(value, stored[key]) for key, value in loaded.state_dict().items())


def test_training_only_the_token_rows_in_use_gives_the_full_tables_weights_bit_for_bit():
    import copy

    import open_clip

    tiny_clip.register_tiny_configs()
    torch.manual_seed(0)
    reference = tiny_clip.create_tiny_clip()
    compact = copy.deepcopy(reference)
    initial_table = reference.token_embedding.weight.detach().clone()
    tokens = open_clip.get_tokenizer(tiny_clip.TINY_CLIP_NAME)(["a red square", "a blue circle on grass",
                                                                "two small green triangles", "a dog"])
    table, renumbered = tiny_clip.train_only_rows_in_use(compact, tokens)
    assert renumbered.max() < compact.token_embedding.weight.shape[0] < 100

    def train(model, text):
        optimizer = torch.optim.AdamW([{"params": [model.token_embedding.weight, model.text_projection],
                                        "weight_decay": 0.1}], lr=1e-2)
        for step in range(4):
            optimizer.param_groups[0]["lr"] = 1e-2 / (step + 1)
            optimizer.zero_grad(set_to_none=True)
            model.encode_text(text).square().sum().backward()
            optimizer.step()
            if model is compact:
                with torch.no_grad():
                    table.decay_rows_not_in_use(optimizer)

    train(reference, tokens)
    train(compact, renumbered)
    table.restore(compact)
    untouched = torch.ones(len(table.full), dtype=torch.bool)
    untouched[tokens.unique()] = False
    # the rows not in use did move (weight decay only), and the compact run moved them identically
    assert not torch.equal(reference.token_embedding.weight[untouched], initial_table[untouched])
    assert torch.equal(compact.token_embedding.weight, reference.token_embedding.weight)
    assert torch.equal(compact.text_projection, reference.text_projection)


def test_trimmed_text_encoding_is_open_clips_encode_text():
    import open_clip

    torch.manual_seed(0)
    model = tiny_clip.create_tiny_clip().eval()
    # lengths 3 to 13 tokens: the batch is cut after the longest caption's end-of-text token, well before position 32
    tokens = open_clip.get_tokenizer(tiny_clip.TINY_CLIP_NAME)(
        ["a dog", "a photo of a small red square on green grass beside a tall blue circle", "two cats"])
    with torch.no_grad():
        trimmed = tiny_clip.encode_text_trimmed(model, tokens)
        full = model.encode_text(tokens, normalize=True)
        # the same caption alone in its batch is cut at its own end: the result does not depend on its batch-mates
        alone = tiny_clip.encode_text_trimmed(model, tokens[:1])
    assert trimmed.shape == full.shape == (3, tiny_clip.TINY_CLIP_CONFIG["embed_dim"])
    torch.testing.assert_close(trimmed, full, rtol=0, atol=1e-6)
    torch.testing.assert_close(alone, full[:1], rtol=0, atol=1e-6)
