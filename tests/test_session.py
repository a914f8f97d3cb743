import os

import pytest
import torch

import clipbook
from clipbook.data.registry import UnknownDatasetError
from clipbook.models.loader import MissingCheckpointError, UnknownModelError


def test_setup_offline_sets_the_hub_offline_and_fixes_threads(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    session = clipbook.setup("offline")
    assert session.device == "cpu" and session.offline
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE


def test_setup_refuses_unknown_profile_and_missing_gpu():
    with pytest.raises(ValueError, match="accepted profiles: offline, paper"):
        clipbook.setup("fast")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
            clipbook.setup("paper")
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            clipbook.setup("offline", device="cuda")


def test_preflight_names_what_is_missing_before_heavy_work(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    clipbook.preflight([["clipbook-tiny-rn", "toyworld"]], ["toy"])  # nothing to fetch: fine
    with pytest.raises(UnknownModelError, match="Did you mean"):
        clipbook.preflight([["ViT-B-61", "openai"]], ["toy"])
    with pytest.raises(MissingCheckpointError, match="weights file"):
        clipbook.preflight([["RN50-quickgelu", str(tmp_path / "absent.pt")]], ["toy"])
    with pytest.raises(UnknownDatasetError, match="known datasets"):
        clipbook.preflight([], ["imagenette"])
    with pytest.raises(TypeError, match="list of \\[architecture, pretrained\\] pairs"):
        clipbook.preflight('[["RN50", "openai"]]', ["toy"])
