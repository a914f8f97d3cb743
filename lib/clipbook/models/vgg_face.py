"""VGG-Face (Parkhi et al. 2015) as Hyp-OC's official code builds it, in torch alone.

    loaded = load_vgg_face("~/data/hyp-oc/pretrained_weights/vgg_face_dag.pth")
    features = loaded.model(torch.stack([loaded.preprocess(image) for image in images]))   # (N, 4096) fc6

The architecture follows `models.py:Vgg_face_dag` of github.com/Kartik-3004/hyp-oc (MIT; read, not copied):
VGG-16's thirteen 3x3 convolutions in five blocks with 2x2 max-pooling, then fc6 (25088 -> 4096), fc7 and fc8
(2622 identities). The modules carry the same names (`conv1_1` ... `conv5_3`, `fc6`, `fc7`, `fc8`), so the
released state dict (`pretrained_weights/vgg_face_dag.pth` of the HF repo `kartiknarayan/hyp-oc`) loads with
no key mapping; a checkpoint whose keys or shapes differ is refused with a one-line error. `forward` returns
what `return_layer='fc6'` returns there: fc6 after its ReLU (before dropout), 4096-d.

Preprocessing is the official `dataloader.py`'s: bicubic resize to 224x224, centre crop 224, `ToTensor()` and
`Normalize(mean=[129.186, 104.762, 93.594], std=[1, 1, 1])`. The means are VGG-Face's 0-255 pixel means but are
subtracted from `ToTensor()`'s [0, 1] values, so every input channel is roughly -129..-93: that is what the code
that produced the reported numbers does, and it is matched here as is.

Under the rehearsal profile (`loader.rehearsing()`) no file is read: the architecture is built at random
initialisation seeded by `loader.random_init_seed("vgg-face", weights)`, and its provenance says "random-init".
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

NAME = "vgg-face"
HF_SOURCE = ("huggingface_hub.hf_hub_download(repo_id='kartiknarayan/hyp-oc', "
             "filename='pretrained_weights/vgg_face_dag.pth') (580 MB)")
PIXEL_MEAN = (129.186279296875, 104.76238250732422, 93.59396362304688)  # models.py:Vgg_face_dag.meta, dataloader.py
IMAGE_SIZE = 224
# config.py --finetune_params: conv5_x and fc6. train.py tests `name in args.finetune_params` against the
# comma-joined *string* (the parsed list is stored as `fintune_params`), a substring test that selects these same
# eight tensors and no others.
FINETUNE_PARAMS = ("conv5_1.weight", "conv5_1.bias", "conv5_2.weight", "conv5_2.bias", "conv5_3.weight",
                   "conv5_3.bias", "fc6.weight", "fc6.bias")
_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # (channels, convolutions) of blocks 1..5


class MissingBackboneError(FileNotFoundError):
    pass


class BadCheckpointError(ValueError):
    pass


class VggFace(nn.Module):
    """VGG-Face with the official module names; `forward` gives relu(fc6), the 4096-d features Hyp-OC uses."""

    def __init__(self):
        super().__init__()
        in_channels = 3
        self.blocks = []  # the convolution names of each block, each block followed by a 2x2 max-pool
        for block, (channels, count) in enumerate(_BLOCKS, start=1):
            names = [f"conv{block}_{index}" for index in range(1, count + 1)]
            for name in names:
                setattr(self, name, nn.Conv2d(in_channels, channels, kernel_size=3, stride=1, padding=1))
                in_channels = channels
            self.blocks.append(names)
        self.fc6 = nn.Linear(512 * 7 * 7, 4096)
        self.fc7 = nn.Linear(4096, 4096)  # unused by the fc6 features; kept so the released state dict loads whole
        self.fc8 = nn.Linear(4096, 2622)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for names in self.blocks:
            for name in names:
                x = torch.relu(getattr(self, name)(x))
            x = nn.functional.max_pool2d(x, kernel_size=2, stride=2)
        return torch.relu(self.fc6(x.flatten(1)))


def preprocess() -> Callable:
    """dataloader.py's transform (see the module docstring: means of 0-255 pixels subtracted from [0, 1] values)."""
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    return Compose([Resize((IMAGE_SIZE, IMAGE_SIZE), interpolation=InterpolationMode.BICUBIC),
                    CenterCrop((IMAGE_SIZE, IMAGE_SIZE)), ToTensor(), Normalize(mean=PIXEL_MEAN, std=(1, 1, 1))])


def set_finetuned(model: VggFace) -> list[nn.Parameter]:
    """Freeze all but conv5_x and fc6 (train.py); returns the trainable parameters."""
    trainable = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name in FINETUNE_PARAMS
        if parameter.requires_grad:
            trainable.append(parameter)
    return trainable


def check_state_dict(state: dict, path: str) -> None:
    """One-line error unless `state` has exactly VggFace's keys and shapes."""
    expected = {key: tuple(value.shape) for key, value in VggFace().state_dict().items()}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadCheckpointError(f"{path} is not a VGG-Face state dict (a dict of tensors, as models.py:Vgg_face_dag "
                                 f"saves); re-download it with {HF_SOURCE}")
    found = {key: tuple(value.shape) for key, value in state.items()}
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    wrong = sorted(key for key in set(expected) & set(found) if expected[key] != found[key])
    if missing or unexpected or wrong:
        details = "; ".join(f"{what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}" for what, keys in
                            (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys)
        raise BadCheckpointError(f"{path} does not match VGG-Face (models.py:Vgg_face_dag) — {details}: a corrupt or "
                                 f"different checkpoint; re-download it with {HF_SOURCE}")


def check_available(weights: str) -> None:
    """Raise now what `load_vgg_face` would: weights not on disk (nothing is read under the rehearsal)."""
    from clipbook.models.loader import rehearsing

    if rehearsing():
        return
    if not weights or not Path(weights).expanduser().is_file():
        raise MissingBackboneError(f"VGG-Face weights not found: {weights!r}. Download them with {HF_SOURCE} and pass "
                                   "their path as backbone_weights")


class LoadedVggFace:
    def __init__(self, model: VggFace, identity: dict):
        self.model, self.identity, self.preprocess = model, identity, preprocess()


def load_vgg_face(weights: str, *, device: str = "cpu") -> LoadedVggFace:
    """VGG-Face with the released weights (or, under the rehearsal, seeded random weights); see the docstring."""
    from clipbook.models.loader import _file_sha256, _state_dict_sha256, random_init_seed, rehearsing
    from clipbook.report import provenance

    check_available(weights)
    if rehearsing():
        seed = random_init_seed(NAME, weights)
        with torch.random.fork_rng(devices=[]):  # the notebook's own random stream is left as it was
            torch.manual_seed(seed)
            model = VggFace()
        identity = {"name": NAME, "weights": f"random-init(seed {seed}, for {weights}):{_state_dict_sha256(model)}"}
    else:
        path = Path(weights).expanduser()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a truncated or foreign file
            raise BadCheckpointError(f"{path} could not be read as a torch state dict ({type(error).__name__}): "
                                     f"re-download it with {HF_SOURCE}") from None
        check_state_dict(state, str(path))
        model = VggFace()
        model.load_state_dict(state)
        identity = {"name": NAME, "weights": f"{path.name}:{_file_sha256(path)}"}
    provenance.note_model(identity)
    return LoadedVggFace(model.to(device).eval(), identity)
