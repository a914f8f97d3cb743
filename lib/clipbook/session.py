"""Notebook session setup: profile, offline environment, determinism, figure style, device."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from clipbook.batch.profiles import PROFILES

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@dataclass(frozen=True)
class Session:
    profile: str
    device: str

    @property
    def offline(self) -> bool:
        return self.profile == "offline"


def _force_hub_offline() -> None:
    """huggingface_hub reads HF_HUB_OFFLINE once at import: if it is already imported (a notebook
    kernel started without the batch runner's environment), switch its constant too."""
    for module_name in ("huggingface_hub.constants",):
        module = sys.modules.get(module_name)
        if module is not None:
            module.HF_HUB_OFFLINE = True


def setup(profile: str = "offline", *, device: str = "auto") -> Session:
    """Call once at the top of a notebook, right after the parameters cell."""
    import torch

    from clipbook.determinism import DEFAULT_THREADS
    from clipbook.report.record import use_style

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; accepted profiles: {', '.join(PROFILES)}")
    if profile == "offline":
        os.environ.update(OFFLINE_ENV)
        _force_hub_offline()
    if device == "auto":
        device = "cuda" if profile == "paper" and torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was requested but no CUDA GPU is visible. The paper profile "
                           "wants a GPU; pass device='cpu' to run it slowly on the CPU anyway.")
    torch.set_num_threads(DEFAULT_THREADS)
    torch.use_deterministic_algorithms(True, warn_only=device.startswith("cuda"))
    use_style()
    return Session(profile=profile, device=device)
