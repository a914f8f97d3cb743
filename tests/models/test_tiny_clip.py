import hashlib

import pytest
import torch

from clipbook.models import tiny_clip
from clipbook.toyworld import splits

QUICK = {"split": "unit-test-pretrain", "epochs": 3, "batch_size": 32, "warmup_steps": 2, "lr": 1e-3}


@pytest.fixture(autouse=True)
def small_pretrain_split():
    splits.register_split("unit-test-pretrain", domain="photo", size=128, home_background_p=0.3)


def _digest(state_dict) -> str:
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        digest.update(key.encode() + state_dict[key].numpy().tobytes())
    return digest.hexdigest()


def test_config_is_registered_with_open_clip():
    import open_clip

    tiny_clip.register_tiny_configs()
    assert tiny_clip.TINY_CLIP_NAME in open_clip.list_models()
    model = open_clip.create_model(tiny_clip.TINY_CLIP_NAME)
    assert model.visual.image_size == (64, 64) or model.visual.image_size == 64


def test_pretraining_is_bit_reproducible_and_lowers_the_loss():
    first = tiny_clip.pretrain(QUICK, show_progress=False)
    second = tiny_clip.pretrain(QUICK, show_progress=False)
    assert _digest(first["state_dict"]) == _digest(second["state_dict"])
    assert sum(first["loss"][-3:]) < sum(first["loss"][:3])
    other_seed = tiny_clip.pretrain({**QUICK, "seed": 1}, show_progress=False)
    assert _digest(other_seed["state_dict"]) != _digest(first["state_dict"])


def test_checkpoint_is_content_addressed_built_once_and_rebuilt_when_corrupt(cache_root, monkeypatch):
    calls = []
    real_pretrain = tiny_clip.pretrain
    monkeypatch.setattr(tiny_clip, "pretrain", lambda recipe, **kw: calls.append(1) or real_pretrain(recipe, **kw))
    path = tiny_clip.tiny_clip_checkpoint(QUICK, show_progress=False)
    assert tiny_clip.tiny_clip_checkpoint(QUICK, show_progress=False) == path and len(calls) == 1
    assert tiny_clip.checkpoint_key(QUICK) in path
    assert tiny_clip.checkpoint_key({**QUICK, "seed": 5}) != tiny_clip.checkpoint_key(QUICK)

    with open(path, "r+b") as handle:  # truncate: a crash mid-copy, a bad disk
        handle.truncate(100)
    with pytest.warns(UserWarning, match="unreadable"):
        rebuilt = tiny_clip.tiny_clip_checkpoint(QUICK, show_progress=False)
    assert rebuilt == path and len(calls) == 2
    assert torch.load(path, weights_only=True)["key"] == tiny_clip.checkpoint_key(QUICK)
