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
    with pytest.raises(ValueError, match="accepted profiles: offline, paper, rehearsal"):
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


def test_start_checks_parameters_sets_up_and_keeps_them_for_the_record():
    from clipbook.batch.parameters import Int, ParameterError, declare

    spec = declare("profile", "models", "datasets", "seeds", "device", passes=Int(minimum=1))
    namespace = {"profile": "offline", "models": [["clipbook-tiny-rn", "toyworld"]], "datasets": ["toy"],
                 "seeds": [1], "device": "auto", "passes": 2, "In": [], "np": object()}
    session = clipbook.start(spec, namespace)
    assert session.parameters["passes"] == 2 and session.device == "cpu" and session.started > 0
    with pytest.raises(ParameterError, match="parameter 'seeds' must be .*got str 'oops'"):
        clipbook.start(spec, {**namespace, "seeds": "oops"})
    with pytest.raises(ParameterError, match="unknown parameter 'seed'"):
        clipbook.start(spec, {**namespace, "seed": 1, "In": ["# Parameters\nseed = 1\n"]})
    with pytest.raises(ParameterError, match="unknown; known datasets"):
        clipbook.start(spec, {**namespace, "datasets": ["imagenette"]})


def test_plain_papermill_refuses_a_bad_parameter_in_the_notebooks_first_code_cell(tmp_path):
    """The README promises that every notebook runs with plain papermill: it must check its own parameters."""
    import subprocess
    from pathlib import Path

    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    done = subprocess.run(["papermill", str(notebooks / "gda.ipynb"), str(tmp_path / "out.ipynb"), "--cwd",
                           str(notebooks), "-p", "seeds", "oops"], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "ParameterError: parameter 'seeds' must be a non-empty list of integer ≥ 0; got str 'oops'" in done.stderr
    executed = [c for c in __import__("nbformat").read(tmp_path / "out.ipynb", as_version=4).cells
                if c.cell_type == "code" and c.get("execution_count")]
    assert "clipbook.start" in executed[-1].source  # it stopped there, before any heavy work


def test_setup_rehearsal_points_the_loaders_at_generated_layouts(monkeypatch, cache_root):
    from clipbook.data import registry

    monkeypatch.setenv("CLIPBOOK_PROFILE", "offline")
    monkeypatch.setenv("CLIPBOOK_DATA", "/nonexistent/real/data")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    session = clipbook.setup("rehearsal")
    assert session.device == ("cuda" if torch.cuda.is_available() else "cpu") and not session.offline
    assert os.environ["CLIPBOOK_PROFILE"] == "rehearsal" and os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["CLIPBOOK_DATA"] == str(cache_root / "rehearsal-data")
    assert len(registry.load_dataset("imagenet", "test").classnames) == 1000
    assert (cache_root / "rehearsal-data" / "eurosat" / "split_zhou_EuroSAT.json").exists()


def test_preflight_checks_a_test_only_dataset_on_the_splits_it_has(tmp_path, monkeypatch):
    from clipbook.data import fake_layouts
    from clipbook.data.registry import MissingDatasetError

    monkeypatch.setenv("CLIPBOOK_DATA", str(tmp_path))
    with pytest.raises(MissingDatasetError, match="ImageNetV2 images not found"):
        clipbook.preflight([], ["imagenet_v2"])
    fake_layouts.write_layout("imagenet_v2", tmp_path)
    clipbook.preflight([], ["imagenet_v2"])  # classify-by-description's paper profile lists it beside imagenet


def test_preflight_checks_a_single_split_set_on_its_split(tmp_path, monkeypatch):
    from clipbook.data import fake_layouts
    from clipbook.data.registry import MissingDatasetError

    monkeypatch.setenv("CLIPBOOK_DATA", str(tmp_path))
    with pytest.raises(MissingDatasetError, match="sce-animals-fruits-dalle3"):
        clipbook.preflight([], ["sce-animals-fruits-dalle3"])
    fake_layouts.write_layout("sce-animals-fruits-dalle3", tmp_path)
    clipbook.preflight([], ["sce-animals-fruits-dalle3"])  # its only split, "all", not train/val/test
