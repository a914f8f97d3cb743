"""Image features, encoded once per (model, weights, dataset, split, transform) and cached on disk.

Notebooks ask for features, never for forward passes: the first request encodes (with a progress
bar) and stores the result under a content hash; every later request, from any notebook, loads it.
"""
from __future__ import annotations

import hashlib
import os

import torch
import torch.nn.functional as F

from clipbook.cache import cached
from clipbook.determinism import deterministic_torch
from clipbook.models.loader import LoadedModel
from clipbook.progress import progress

FEATURES_VERSION = 2  # bump when the encoding procedure changes


class _Transformed(torch.utils.data.Dataset):
    def __init__(self, dataset, transform, indices=None, augment_pass: int | None = None):
        self.dataset, self.transform, self.augment_pass = dataset, transform, augment_pass
        self.indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        index = self.indices[position]
        image, label = self.dataset[index]
        if self.augment_pass is None:
            return self.transform(image), label
        # random transforms draw from torch's global RNG: seeding it per (pass, image) makes a crop
        # independent of batch size, loader workers and which subset the image is encoded in
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.augment_pass * 1_000_003 + index)
            return self.transform(image), label


# Below this many images, starting loader processes costs more than it saves (few-shot subsets).
MIN_IMAGES_FOR_WORKERS = 1024


def _loader_workers(device: torch.device, num_images: int) -> int:
    """Decoding and transforms are the bottleneck on a GPU (measured on an H100: RN50 encodes ~4,300
    img/s, one process decodes and transforms ~400 img/s, 8 workers ~700 img/s); on the offline CPU
    profile they share the same two cores as the model, so no workers."""
    if device.type == "cpu" or num_images < MIN_IMAGES_FOR_WORKERS:
        return 0
    return min(8, os.cpu_count() or 1)


def _eval_normalize(loaded: LoadedModel, transform, image_size: int):
    """The Normalize of the model's eval preprocessing when `transform` is that preprocessing and it does nothing
    else to an image already at the model's input size (resize and centre crop are identities there); else None."""
    from torchvision import transforms

    if transform is not loaded.preprocess or not hasattr(transform, "transforms"):
        return None
    # the input size of an open_clip tower, or of a timm ViT (the self-supervised encoders)
    size = getattr(getattr(loaded.model, "visual", None), "image_size", None) or getattr(loaded.model, "image_size", None)
    size = size[0] if isinstance(size, (tuple, list)) else size
    if size != image_size:
        return None
    steps = transform.transforms
    normalize = [t for t in steps if isinstance(t, transforms.Normalize)]
    harmless = (transforms.Resize, transforms.CenterCrop, transforms.ToTensor, transforms.Normalize)
    # converting to RGB is an identity on the toy world's RGB images: open_clip's `_convert_to_rgb` (older releases)
    # or `MaybeConvertMode("RGB")` (newer ones, beside `MaybeToTensor`, a ToTensor)
    to_rgb = [t for t in steps if getattr(t, "__name__", "") == "_convert_to_rgb"
              or (type(t).__name__ == "MaybeConvertMode" and getattr(t, "mode", None) == "RGB")]
    if len(normalize) != 1 or not all(isinstance(t, harmless) or any(t is r for r in to_rgb) for t in steps):
        return None
    for t in steps:
        if isinstance(t, (transforms.Resize, transforms.CenterCrop)):
            wanted = t.size if isinstance(t.size, int) else t.size[0]
            if wanted != size or (isinstance(t.size, (tuple, list)) and len(set(t.size)) != 1):
                return None
    return normalize[0]


def _encode_rendered(loaded: LoadedModel, dataset, indices, normalize, batch_size: int, desc: str):
    """Encode a procedural dataset drawn a batch at a time (`dataset.render`), the next batch drawn in a thread
    while the model encodes this one: rendering is not the bottleneck of cold feature extraction."""
    from concurrent.futures import ThreadPoolExecutor

    device = next(loaded.model.parameters()).device
    order = list(range(len(dataset))) if indices is None else indices
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    mean = torch.tensor(normalize.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
    std = torch.tensor(normalize.std, dtype=torch.float32).view(1, 3, 1, 1) * 255

    def prepare(batch):  # as ToTensor (x / 255) then Normalize ((x - mean) / std), in one step
        pixels = torch.from_numpy(dataset.render(batch)).permute(0, 3, 1, 2).float()
        return (pixels - mean) / std

    chunks = []
    with ThreadPoolExecutor(max_workers=1) as pool, deterministic_torch(), torch.no_grad():
        pending = pool.submit(prepare, batches[0]) if batches else None
        for b in progress(range(len(batches)), desc=desc, leave=False):
            images = pending.result()
            pending = pool.submit(prepare, batches[b + 1]) if b + 1 < len(batches) else None
            chunks.append(loaded.model.encode_image(images.to(device)).float().cpu())
    return torch.cat(chunks) if chunks else torch.empty(0)


def _encode(loaded: LoadedModel, dataset, indices, transform, batch_size: int, desc: str, seed: int | None):
    if seed is None and hasattr(dataset, "render") and hasattr(dataset, "image_size"):
        normalize = _eval_normalize(loaded, transform, dataset.image_size)
        if normalize is not None:
            return _encode_rendered(loaded, dataset, indices, normalize, batch_size, desc)
    device = next(loaded.model.parameters()).device
    items = _Transformed(dataset, transform, indices, seed)
    workers = _loader_workers(device, len(items))
    loader = torch.utils.data.DataLoader(items, batch_size=batch_size,
                                         shuffle=False, num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=False)
    chunks = []
    with deterministic_torch(), torch.no_grad():
        for images, _ in progress(loader, desc=desc, leave=False):
            chunks.append(loaded.model.encode_image(images.to(device)).float().cpu())
    return torch.cat(chunks) if chunks else torch.empty(0)


def image_features(loaded: LoadedModel, dataset, *, indices=None, transform=None, augment_pass: int | None = None,
                   batch_size: int = 256, normalize: bool = True) -> torch.Tensor:
    """Features (N, D) of the images of `dataset` (all, or `indices`), in that order.

    `transform` defaults to the model's eval preprocessing. For random (augmenting) transforms pass
    `augment_pass`: pass p is drawn with seed p, so each pass is reproducible and cached separately.
    Few-shot code should encode its k-shot subset by `indices` rather than a whole training set.
    """
    transform = transform or loaded.preprocess
    if indices is not None:
        indices = [int(i) for i in indices]
    spec = {
        "version": FEATURES_VERSION, "model": loaded.identity, "data": dataset.fingerprint(),
        "indices": None if indices is None else hashlib.sha256(str(indices).encode()).hexdigest(),
        "transform": repr(transform), "augment_pass": augment_pass,
    }
    desc = f"encoding {dataset.name}/{dataset.split}" + (f" (aug {augment_pass})" if augment_pass is not None else "")
    features = cached("features", spec,
                      lambda: _encode(loaded, dataset, indices, transform, batch_size, desc, augment_pass),
                      name=f"{dataset.name}-{dataset.split}")
    return F.normalize(features, dim=-1) if normalize else features


def augment_transform(loaded: LoadedModel, scale: tuple[float, float] = (0.5, 1.0)):
    """The few-shot training augmentation of Tip-Adapter/GDA at the model's input size:
    RandomResizedCrop(scale=(0.5, 1), bicubic) + horizontal flip + the model's normalisation
    (ICLR24 main_few_shots.py `train_tranform`)."""
    from torchvision import transforms

    size = loaded.model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    normalize = next(t for t in loaded.preprocess.transforms if isinstance(t, transforms.Normalize))
    return transforms.Compose([
        transforms.RandomResizedCrop(size, scale=scale, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.RandomHorizontalFlip(p=0.5),
        transforms.ToTensor(),
        transforms.Normalize(normalize.mean, normalize.std),
    ])


# toy splits rendered in this process, by fingerprint; the oldest goes beyond _RENDERED_KEPT (a toy test split as
# float pixels is about 0.1 GB)
_RENDERED: dict[str, torch.Tensor] = {}
_RENDERED_KEPT = 8


def rendered_image_features(loaded: LoadedModel, dataset, *, batch_size: int = 256) -> torch.Tensor:
    """Raw (unnormalised) image features of a dataset for a model a notebook trains itself.

    A toy split is rendered once per process and kept for every model that encodes it next:
    the training-recipe notebooks evaluate many trained models (arms x seeds) on the same test sets, where
    `image_features` would render the split again for each model, which costs more than encoding it. The pixels are
    `tiny_clip.images_to_tensor`'s, as the toy training saw them. A real dataset goes through `image_features`
    (its eval preprocessing, cached on disk by model identity)."""
    if not hasattr(dataset, "render"):
        return image_features(loaded, dataset, normalize=False)
    from clipbook.models.tiny_clip import images_to_tensor

    key = hashlib.sha256(repr(dataset.fingerprint()).encode()).hexdigest()
    if key not in _RENDERED:
        while len(_RENDERED) >= _RENDERED_KEPT:
            _RENDERED.pop(next(iter(_RENDERED)))
        _RENDERED[key] = images_to_tensor(dataset.render(range(len(dataset))))
    pixels = _RENDERED[key]
    device = next(loaded.model.parameters()).device
    with torch.no_grad():
        return torch.cat([loaded.model.encode_image(pixels[i:i + batch_size].to(device)).float().cpu()
                          for i in range(0, len(pixels), batch_size)])
