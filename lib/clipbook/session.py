"""Notebook session setup: profile, offline environment, determinism, figure style, device."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

from clipbook.batch.parameters import PROFILES, NotebookSpec, parameter_values

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
# The session's profile, for library code that depends on it without a session at hand (the model loader); an
# environment variable so that forked workers and the batch's kernels (runner.kernel_environment) share it.
PROFILE_ENV = "CLIPBOOK_PROFILE"
# Profiles that rehearse the paper path: every checkpoint is its architecture at random init (models.loader) and
# every dataset a generated one in the real layout (data.fake_layouts), so nothing is downloaded or read from ~/data.
REHEARSAL_PROFILES = ("rehearsal",)


@dataclass(frozen=True)
class Session:
    profile: str
    device: str
    parameters: dict = field(default_factory=dict)  # every resolved parameter, as the record logs them
    started: float = field(default_factory=time.time)

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


def active_profile() -> str:
    """The profile of this process's session (set by `setup`; the batch sets it in the kernel's environment)."""
    return os.environ.get(PROFILE_ENV, "offline")


def _use_rehearsal_data() -> None:
    """Point the real loaders ($CLIPBOOK_DATA) at the generated layouts, written on first use."""
    from clipbook.data import fake_layouts

    os.environ["CLIPBOOK_DATA"] = str(fake_layouts.ensure_layouts(fake_layouts.rehearsal_data_root()))


def setup(profile: str = "offline", *, device: str = "auto") -> Session:
    """Call once at the top of a notebook, right after the parameters cell."""
    import torch

    from clipbook.determinism import DEFAULT_THREADS
    from clipbook.report.record import use_style

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; accepted profiles: {', '.join(PROFILES)}")
    os.environ[PROFILE_ENV] = profile
    if profile == "offline" or profile in REHEARSAL_PROFILES:
        os.environ.update(OFFLINE_ENV)
        _force_hub_offline()
    if profile in REHEARSAL_PROFILES:
        _use_rehearsal_data()
    if device == "auto":
        if profile == "paper" and not torch.cuda.is_available():
            raise RuntimeError("the paper profile runs the papers' real models and datasets and needs a CUDA GPU, "
                               "but none is visible. Run it on a GPU machine, or pass device='cpu' to run it "
                               "(slowly) on the CPU anyway.")
        device = "cuda" if profile == "paper" or profile in REHEARSAL_PROFILES and torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was requested but no CUDA GPU is visible; use device='cpu'.")
    if device.startswith("cuda"):  # cuBLAS is deterministic only with a fixed workspace (read at first use)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(DEFAULT_THREADS)
    torch.use_deterministic_algorithms(True, warn_only=device.startswith("cuda"))
    use_style()
    return Session(profile=profile, device=device)


def preflight(models: list, datasets: list[str], splits: tuple[str, ...] = ("train", "val", "test")) -> None:
    """Fail before any heavy work if a model's weights or a dataset is missing (offline), with the
    loaders' own messages: which file, where it comes from, how to provide it."""
    from clipbook.data import registry
    from clipbook.models.loader import check_available

    if not isinstance(models, list) or not all(
            isinstance(m, str) or (isinstance(m, list) and len(m) == 2 and all(isinstance(x, (str, type(None))) for x in m))
            for m in models):
        raise TypeError(f"models must be a list of [architecture, pretrained] pairs (or names), got {models!r}; "
                        "with papermill pass lists as YAML: -y 'models: [[RN50-quickgelu, openai]]'")
    if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
        raise TypeError(f"datasets must be a list of dataset names, got {datasets!r}")
    for entry in models:
        name, tag = (entry, None) if isinstance(entry, str) else entry
        check_available(name, tag)
    for dataset_name in datasets:
        # a test-only dataset (ImageNet-V2, -A, -R, -Sketch) is checked on the splits it has, a single-split set
        # ("all": image folders, generated prompt-image sets) on that split
        own = list(registry.DATASETS.get(dataset_name, {}).get("splits", splits))
        for split in [s for s in splits if s in own] or own:
            registry.load_dataset(dataset_name, split)


def start(spec: NotebookSpec, namespace: dict) -> Session:
    """A notebook's first call, right after its parameters: check every parameter against the notebook's
    declaration (a one-line ParameterError, under plain papermill too), set up the session, and check
    that the models and datasets exist before any heavy work.

    Args:
        spec: the notebook's `SPEC` (clipbook.batch.parameters.declare).
        namespace: the notebook's `globals()`, holding the parameters cell's values and papermill's.
    """
    from clipbook.report import provenance

    started = time.time()
    parameters = spec.check(parameter_values(spec, namespace))
    base = setup(parameters["profile"], device=parameters.get("device", "auto"))
    provenance.reset()
    if "models" in parameters and "datasets" in parameters:
        preflight(parameters["models"], parameters["datasets"])
    return Session(profile=base.profile, device=base.device, parameters=parameters, started=started)
