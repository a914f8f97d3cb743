"""The model loader on checkpoints the tests make: no download is possible or attempted."""
import hashlib
import json
import socket

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from clipbook.cache import CorruptCacheError
from clipbook.models import loader
from clipbook.models.tiny_clip import TINY_CLIP_CONFIG, TINY_CLIP_NAME, register_tiny_configs


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the loader tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_state_dict():
    register_tiny_configs()
    torch.manual_seed(1)
    return open_clip.create_model(TINY_CLIP_NAME).state_dict()


def _image():
    return Image.fromarray(np.full((64, 64, 3), 128, dtype=np.uint8))


def test_weights_file_loads_exactly_with_a_content_identity(tmp_path, tiny_state_dict):
    path = tmp_path / "w.pt"
    torch.save(tiny_state_dict, path)
    loaded = loader.load_model(TINY_CLIP_NAME, str(path))
    assert torch.equal(loaded.model.state_dict()["text_projection"], tiny_state_dict["text_projection"])
    assert loaded.identity["weights"] == hashlib.sha256(path.read_bytes()).hexdigest()[:20]
    with torch.no_grad():
        image = loaded.model.encode_image(loaded.preprocess(_image())[None])
    assert image.shape == (1, TINY_CLIP_CONFIG["embed_dim"])
    assert loaded.encode_text_prompts(["a photo of a star."]).shape == (1, TINY_CLIP_CONFIG["embed_dim"])


def test_weights_file_keeps_the_named_tags_preprocessing(tmp_path, tiny_state_dict, monkeypatch):
    path = tmp_path / "w.pt"
    torch.save(tiny_state_dict, path)
    custom = {"mean": (0.1, 0.2, 0.3), "std": (0.4, 0.5, 0.6), "interpolation": "bilinear", "resize_mode": "squash"}
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda name, tag: custom if tag == "sometag" else {})
    loaded = loader.load_model(TINY_CLIP_NAME, str(path), preprocess_from="sometag")
    normalize = [t for t in loaded.preprocess.transforms if type(t).__name__ == "Normalize"][0]
    assert tuple(normalize.mean) == custom["mean"] and tuple(normalize.std) == custom["std"]


def _write_open_clip_folder(folder, state_dict):
    folder.mkdir(parents=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CONFIG, "preprocess_cfg": {}}))
    torch.save(state_dict, folder / "open_clip_pytorch_model.bin")


def test_local_dir(tmp_path, tiny_state_dict):
    _write_open_clip_folder(tmp_path / "model", tiny_state_dict)
    loaded = loader.load_model(f"local-dir:{tmp_path / 'model'}")
    assert torch.equal(loaded.model.state_dict()["positional_embedding"], tiny_state_dict["positional_embedding"])
    with pytest.raises(loader.MissingCheckpointError, match="open_clip_config.json"):
        loader.load_model(f"local-dir:{tmp_path / 'empty'}")


def test_hf_hub_from_an_offline_cache(tmp_path, tiny_state_dict, monkeypatch):
    """The Hugging Face cache layout, as a download would leave it: loaded with the hub offline."""
    import huggingface_hub.constants

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--clipbook--tiny"
    _write_open_clip_folder(repo / "snapshots" / revision, tiny_state_dict)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = loader.load_model("hf-hub:clipbook/tiny", cache_dir=str(tmp_path / "hub"))
    assert torch.equal(loaded.model.state_dict()["text_projection"], tiny_state_dict["text_projection"])
    with pytest.raises(loader.MissingCheckpointError, match="clipbook/absent") as missing:
        loader.load_model("hf-hub:clipbook/absent", cache_dir=str(tmp_path / "hub"))
    assert "It would come from" in str(missing.value) and "To provide it" in str(missing.value)


def test_missing_tag_offline_says_which_checkpoint_where_from_and_how(tmp_path):
    with pytest.raises(loader.MissingCheckpointError) as missing:
        loader.load_model("ViT-B-16-quickgelu", "openai", cache_dir=str(tmp_path))
    message = str(missing.value)
    assert "ViT-B-16-quickgelu / openai" in message and "timm/vit_base_patch16_clip_224.openai" in message
    assert "models--timm--vit_base_patch16_clip_224.openai" in message
    with pytest.raises(loader.MissingCheckpointError, match="weights file"):
        loader.load_model("RN50-quickgelu", str(tmp_path / "absent.pt"))


def test_failed_download_online_says_which_checkpoint_where_from_and_how(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")  # the paper profile: downloads allowed, but the hub is unreachable

    def unreachable(*args, **kwargs):
        raise RuntimeError("Failed to download weights for tag 'openai': connection refused")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", unreachable)
    with pytest.raises(loader.MissingCheckpointError) as missing:
        loader.load_model("RN50-quickgelu", "openai", cache_dir=str(tmp_path))
    message = str(missing.value)
    assert message.startswith("checkpoint could not be downloaded") and "connection refused" in message
    assert "timm/resnet50_clip.openai" in message and "models--timm--resnet50_clip.openai" in message


def test_unknown_architecture_and_tag_are_refused_with_suggestions():
    with pytest.raises(loader.UnknownModelError, match="Did you mean: .*ViT-B-16"):
        loader.load_model("ViT-B-61", "openai")
    with pytest.raises(loader.UnknownModelError, match="known tags: .*openai"):
        loader.load_model("RN50-quickgelu", "laion9000")
    with pytest.raises(loader.UnknownModelError, match="non-empty string"):
        loader.load_model("")


def test_corrupt_weights_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x80\x02 this is not a checkpoint")
    with pytest.raises(CorruptCacheError, match="broken.pt"):
        loader.load_model(TINY_CLIP_NAME, str(bad))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        loader.load_model(TINY_CLIP_NAME, "x.pt", device="cuda")


def test_random_init_is_identified_by_its_weights():
    """Feature caches key on the identity: two different random inits must not share features."""
    torch.manual_seed(0)
    first = loader.load_model("RN50-quickgelu", None)
    torch.manual_seed(0)
    same = loader.load_model("RN50-quickgelu", None)
    torch.manual_seed(1)
    other = loader.load_model("RN50-quickgelu", None)
    assert first.identity == same.identity != other.identity
    assert first.identity["weights"].startswith("random-init:")


def test_rehearsal_builds_the_architecture_at_seeded_random_init_with_the_tags_preprocessing(monkeypatch):
    monkeypatch.setenv("CLIPBOOK_PROFILE", "rehearsal")
    torch.manual_seed(0)
    before = torch.rand(1)
    first = loader.load_model("RN50-quickgelu", "openai")  # no weights on disk: never read
    second = loader.load_model("RN50-quickgelu", "openai")
    assert first.identity == second.identity and first.identity["weights"].startswith("random-init")
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()))
    other_tag = loader.load_model("RN50-quickgelu", "yfcc15m")
    assert other_tag.identity["weights"] != first.identity["weights"]
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), before)  # the notebook's random stream is untouched
    normalize = [t for t in first.preprocess.transforms if type(t).__name__ == "Normalize"][0]
    assert tuple(normalize.mean) == open_clip.get_pretrained_cfg("RN50-quickgelu", "openai")["mean"]
    assert first.preprocess(_image()).shape == (3, 224, 224)
    assert first.model.visual.output_dim == 1024  # the real architecture, not a smaller one


def test_rehearsal_still_refuses_unknown_architectures_and_tags(monkeypatch):
    monkeypatch.setenv("CLIPBOOK_PROFILE", "rehearsal")
    with pytest.raises(loader.UnknownModelError, match="unknown pretrained tag 'opnai'.*known tags: .*openai"):
        loader.load_model("ViT-B-16-quickgelu", "opnai")
    with pytest.raises(loader.UnknownModelError, match="Did you mean: .*ViT-B-16"):
        loader.load_model("ViT-B-61", "openai")
    monkeypatch.setenv("CLIPBOOK_PROFILE", "paper")
    with pytest.raises(loader.MissingCheckpointError, match="RN50-quickgelu / openai"):
        loader.load_model("RN50-quickgelu", "openai")


def test_a_hub_defined_text_tower_missing_offline_is_named_before_anything_is_built(tmp_path, monkeypatch):
    """XLM-R text towers read their config and tokenizer from the Hub even at random init: the check names them."""
    with pytest.raises(loader.MissingCheckpointError, match="'xlm-roberta-base'") as missing:
        loader.check_available("xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k", cache_dir=str(tmp_path))
    assert "huggingface-cli download xlm-roberta-base" in str(missing.value)
    loader.check_available("ViT-B-32", None)  # a tower open_clip defines itself needs nothing from the Hub
    monkeypatch.setenv("CLIPBOOK_PROFILE", "rehearsal")  # a tower without a stand-in is still named
    monkeypatch.setattr(loader.hub_standins, "HUB_TEXT_TOWERS", {})
    with pytest.raises(loader.MissingCheckpointError, match="not even at random initialisation"):
        loader.check_available("xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k", cache_dir=str(tmp_path))


def test_the_rehearsal_builds_an_xlm_r_clip_and_its_hub_fine_tune_from_the_published_configs(monkeypatch):
    """The real architecture (XLM-R base text tower: 250002 x 768 embeddings, 12 layers; ViT-B/32) at random init,
    with the stand-in tokenizer; the hf-hub fine-tune gets its own seed, so it differs from its base."""
    monkeypatch.setenv("CLIPBOOK_PROFILE", "rehearsal")
    base = loader.load_model("xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k")
    transformer = base.model.text.transformer
    assert transformer.embeddings.word_embeddings.weight.shape == (250002, 768)
    assert len(transformer.encoder.layer) == 12 and base.model.visual.conv1.kernel_size == (32, 32)
    tokens = base.tokenizer(["a satellite photo of a forest.", "zz"])
    # "zz" is <s> ▁ z z </s> and padding: XLM-R's special ids (0, 2, pad 1)
    assert tokens.shape == (2, 77) and tokens[1, [0, 4, 5]].tolist() == [0, 2, 1] and tokens[1, 2] == tokens[1, 3]
    assert base.identity["tokenizer"].startswith("rehearsal stand-in")
    with torch.no_grad():
        assert base.model.encode_text(tokens).shape == (2, 512)
    released = loader.load_model("hf-hub:joaodaniel/RS-M-CLIP")
    assert type(released.model.text.transformer) is type(transformer)
    assert released.identity["weights"] != base.identity["weights"]
    normalize = [t for t in released.preprocess.transforms if type(t).__name__ == "Normalize"][0]
    assert tuple(normalize.mean) == open_clip.get_pretrained_cfg("xlm-roberta-base-ViT-B-32",
                                                                 "laion5b_s13b_b90k")["mean"]


def test_the_rehearsal_names_hub_defined_architectures_it_cannot_stand_in_for(monkeypatch):
    monkeypatch.setenv("CLIPBOOK_PROFILE", "rehearsal")
    with pytest.raises(loader.MissingCheckpointError, match="architecture files not found offline: hf-hub:org/m"):
        loader.check_available("hf-hub:org/m")


def test_a_tiny_clip_with_a_stem_loads_its_own_checkpoint_quietly(monkeypatch, tmp_path, capfd):
    """open_clip cannot build the ViT-C stem from a config; the loader builds it and loads the checkpoint exactly."""
    from clipbook.models import tiny_clip
    from clipbook.toyworld import splits

    monkeypatch.setenv("CLIPBOOK_CACHE", str(tmp_path))
    splits.register_split("unit-test-stem", domain="photo", size=64, home_background_p=0.3)
    name = tiny_clip.TINY_CLIP_VIT_NAME
    monkeypatch.setitem(tiny_clip.TINY_CLIP_STEMS, name, {"channels": [8, 16, 32]})
    monkeypatch.setitem(tiny_clip.PRETRAIN_RECIPES, name, {**tiny_clip.PRETRAIN_VIT, "split": "unit-test-stem",
                                                           "epochs": 1, "batch_size": 32, "warmup_steps": 1})
    loaded = loader.load_model(name)
    stored = torch.load(tiny_clip.tiny_clip_checkpoint(name=name), weights_only=True)["state_dict"]
    assert all(torch.equal(value, stored[key]) for key, value in loaded.model.state_dict().items())
    assert not loaded.model.training and loaded.identity["weights"].startswith("toyworld:")
    assert "pretrained" not in capfd.readouterr().err.lower()  # no open_clip warning about missing weights
