import pytest


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    """An empty clipbook cache for tests that exercise caching itself."""
    root = tmp_path / "cache"
    monkeypatch.setenv("CLIPBOOK_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def random_tiny_clip(tmp_path_factory):
    """A randomly initialised tiny CLIP loaded through the library's loader (no pretraining)."""
    import open_clip
    import torch

    from clipbook.models.loader import load_model
    from clipbook.models.tiny_clip import TINY_CLIP_NAME, register_tiny_configs

    register_tiny_configs()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "random-tiny.pt"
    torch.save(open_clip.create_model(TINY_CLIP_NAME).state_dict(), path)
    return load_model(TINY_CLIP_NAME, str(path))


@pytest.fixture
def state_digest():
    """sha256 of a state dict's names and bytes: equal digests mean bit-identical weights."""
    import hashlib

    def digest(state_dict) -> str:
        hashed = hashlib.sha256()
        for key in sorted(state_dict):
            hashed.update(key.encode() + state_dict[key].numpy().tobytes())
        return hashed.hexdigest()
    return digest
