"""One training loop for tiny CLIPs, with the parts the training-recipe papers change plugged in.

A paper's change is a short function in its notebook, passed here:

- `loss(out, batch) -> Tensor`: the objective (default `clip_loss`, open_clip's `ClipLoss`: symmetric InfoNCE).
  `out` holds "image_features" and "text_features" (L2-normalised), "logit_scale" (exp'd), and whatever `forward`
  or `teacher` added; `batch` holds "indices", "images", "tokens", "captions" and "step".
- `caption_transform(index, rng) -> str`: the caption a pair shows at this step (LaCLIP samples one of k rewrites).
- `sampler(step, rng) -> indices`: which pairs make the step's batch (MetaCLIP's balanced curation can also be a
  filter: pass the kept `indices` instead).
- `teacher(batch) -> dict`: extra targets computed without gradient (distillation), merged into `out`.
- `forward(model, images, tokens) -> dict`: how the model produces `out` (an MoE tower, embedding-space mixing).

The run is the baseline when every part is the default, so a paper's change and its baseline differ only in that
part, at the same steps, batch, data and seed. `trained_clip` caches the result content-addressed by the start
point, the data, the recipe and the source code of every plugged-in function, so editing a method retrains it.
"""
from __future__ import annotations

import hashlib
import inspect
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from clipbook.cache import cache_dir, cached_checkpoint, content_key, load_torch
from clipbook.determinism import SMALL_WORK_THREADS, deterministic_torch, seed_everything
from clipbook.progress import progress

# open_clip's training defaults at a toy scale (open_clip `training/params.py`: AdamW, wd 0.2 for ViT-B/32 runs
# and 0.1 here as the tiny CLIP's pretraining; beta2 0.98 for ViTs, cosine schedule with linear warm-up).
RECIPE: dict[str, Any] = {
    "steps": 200,
    "batch_size": 128,
    "lr": 5e-4,
    "weight_decay": 0.1,
    "betas": (0.9, 0.98),
    "warmup_steps": 20,
    "seed": 0,
    "max_logit_scale": 100.0,  # CLIP clamps the learned temperature's exp at 100
    "train_logit_scale": True,
    # torch threads: results depend on how reductions split across threads, so this is part of the recipe. One
    # thread, because these small steps measured 4x faster on one thread than on two on the shared 2-core machine.
    "threads": SMALL_WORK_THREADS,
}


def clip_loss(out: dict, batch: dict) -> torch.Tensor:
    """The baseline objective: open_clip's ClipLoss (mean of image→text and text→image cross-entropy)."""
    from open_clip import ClipLoss

    return ClipLoss()(out["image_features"], out["text_features"], out["logit_scale"])


def encode_pair(model, images: torch.Tensor, tokens: torch.Tensor) -> dict:
    """The default forward: normalised features of both towers and the temperature, as open_clip's CLIP.forward."""
    return {"image_features": F.normalize(model.encode_image(images), dim=-1),
            "text_features": F.normalize(model.encode_text(tokens), dim=-1),
            "logit_scale": model.logit_scale.exp()}


def cosine_lr(step: int, total: int, base_lr: float, warmup: int) -> float:
    """open_clip `training/scheduler.py` `cosine_lr`: linear warm-up to base_lr, then cosine decay to 0."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    return 0.5 * base_lr * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _check_recipe(recipe: dict) -> dict:
    unknown = sorted(set(recipe) - set(RECIPE))
    if unknown:
        raise ValueError(f"unknown training recipe keys {unknown}; known: {sorted(RECIPE)}")
    full = {**RECIPE, **recipe}
    for key in ("steps", "batch_size", "warmup_steps", "seed", "threads"):
        if not isinstance(full[key], int) or isinstance(full[key], bool) or full[key] < 0:
            raise ValueError(f"training recipe {key!r} must be a non-negative int, got {full[key]!r}")
    if full["batch_size"] < 2:
        raise ValueError("a contrastive batch needs at least 2 pairs")
    return full


def train_clip(model, images: torch.Tensor, captions: Sequence[str], tokenizer: Callable, recipe: dict | None = None,
               *, loss: Callable = clip_loss, caption_transform: Callable | None = None,
               sampler: Callable | None = None, teacher: Callable | None = None, forward: Callable = encode_pair,
               indices: Sequence[int] | None = None, trainable: Callable[[str], bool] | None = None,
               show_progress: bool = True, desc: str = "training tiny CLIP") -> dict:
    """Train `model` in place on (images[i], captions[i]) pairs; returns the per-step log.

    Args:
        images: (N, 3, H, W) normalised pixels. captions: N strings (the pair's caption when no transform).
        indices: the pairs training may draw from (a data filter); all N by default.
        trainable: which named parameters train (e.g. freeze one tower); all by default.
    Returns:
        {"loss": [...], "logit_scale": [...], "seen_pairs": int, "recipe": full recipe}
    """
    recipe = _check_recipe(recipe or {})
    pool = torch.as_tensor(np.arange(len(images)) if indices is None else np.asarray(indices), dtype=torch.long)
    if len(captions) != len(images):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    if len(pool) < recipe["batch_size"] and sampler is None:
        raise ValueError(f"the data ({len(pool)} pairs) is smaller than one batch ({recipe['batch_size']})")
    names_params = [(name, param) for name, param in model.named_parameters()
                    if (trainable is None or trainable(name))
                    and (recipe["train_logit_scale"] or "logit_scale" not in name)]
    for name, param in model.named_parameters():
        param.requires_grad_(any(param is p for _, p in names_params))
    # as open_clip's main.py: no weight decay on gains, biases, embeddings' scalars and the temperature
    decay = [p for n, p in names_params if p.ndim >= 2 and "logit_scale" not in n]
    no_decay = [p for n, p in names_params if p.ndim < 2 or "logit_scale" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": recipe["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=recipe["lr"],
                                  betas=tuple(recipe["betas"]))
    log = {"loss": [], "logit_scale": [], "seen_pairs": 0, "recipe": recipe}
    with deterministic_torch(recipe["threads"]):
        seed_everything(recipe["seed"])
        generator = torch.Generator().manual_seed(recipe["seed"])
        rng = np.random.default_rng(recipe["seed"])
        order, cursor = torch.empty(0, dtype=torch.long), 0
        model.train()
        bar = progress(total=recipe["steps"], desc=desc, disable=not show_progress)
        for step in range(recipe["steps"]):
            if sampler is not None:
                chosen = torch.as_tensor(np.asarray(sampler(step, rng)), dtype=torch.long)
            else:  # epochs over the pool, a fresh shuffle each time, no partial batches
                if cursor + recipe["batch_size"] > len(order):
                    order, cursor = pool[torch.randperm(len(pool), generator=generator)], 0
                chosen = order[cursor:cursor + recipe["batch_size"]]
                cursor += recipe["batch_size"]
            texts = [caption_transform(int(i), rng) if caption_transform else captions[int(i)] for i in chosen]
            batch = {"indices": chosen, "images": images[chosen], "tokens": tokenizer(texts), "captions": texts,
                     "step": step}
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, recipe["steps"], recipe["lr"], recipe["warmup_steps"])
            out = forward(model, batch["images"], batch["tokens"])
            if teacher is not None:
                with torch.no_grad():
                    out = {**out, **teacher(batch)}
            value = loss(out, batch)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(recipe["max_logit_scale"]))
            log["loss"].append(float(value.detach()))
            log["logit_scale"].append(float(model.logit_scale.detach().exp()))
            log["seen_pairs"] += len(chosen)
            bar.update(1)
        bar.close()
        model.eval()
    for param in model.parameters():
        param.requires_grad_(True)
    return log


def code_fingerprint(function: Callable | None, _within: tuple = ()) -> str | None:
    """A hash of a plugged-in function's source (and of the functions and values its closure holds), so a cache
    entry trained with one version of a method is never read back for another."""
    if function is None:
        return None
    if any(function is outer for outer in _within):  # a method's `__class__` cell (super()) leads back to its class
        return getattr(function, "__qualname__", "")
    within = (*_within, function)
    try:
        parts = [inspect.getsource(function)]
    except (OSError, TypeError):
        # a class typed in a notebook cell: the kernel keeps its methods' source but not the class's, so hash those
        # (else an edited class would read back the old class's results); a builtin or a lambda typed at a prompt:
        # its qualified name
        parts = _class_parts(function, within) if isinstance(function, type) else \
            [getattr(function, "__qualname__", repr(function))]
    for cell in getattr(function, "__closure__", None) or ():
        value = cell.cell_contents
        parts.append(code_fingerprint(value, within) if callable(value) else repr(value))
    return hashlib.sha256("\n".join(p or "" for p in parts).encode()).hexdigest()[:16]


def _class_parts(cls: type, within: tuple) -> list[str | None]:
    """A class's name, bases, and each attribute in definition order: methods (and the functions behind static and
    class methods and properties) by `code_fingerprint`, plain values by repr."""
    parts = [cls.__qualname__, *[code_fingerprint(base, within) if base.__module__ == cls.__module__
                                 else base.__qualname__ for base in cls.__bases__]]
    for name, value in vars(cls).items():
        if name in ("__dict__", "__weakref__", "__module__", "__qualname__"):
            continue
        inner = getattr(value, "__func__", None) or getattr(value, "fget", None) or getattr(value, "func", None)
        function = inner if inner is not None else value
        parts.append(f"{name}: {code_fingerprint(function, within) if callable(function) else _stable_repr(function)}")
    return parts


def _stable_repr(value) -> str:
    """repr, or the type's name where repr holds a memory address (it would change the key on every run)."""
    text = repr(value)
    return type(value).__qualname__ if re.search(r" at 0x[0-9a-f]+", text) else text


def trained_clip(name: str, build_model: Callable[[], Any], data_key: Any, train: Callable[[Any], dict], *,
                 recipe: dict, plugins: dict[str, Callable | None], start: Any = "scratch") -> tuple[Any, dict]:
    """The model `train(model)` produces from `build_model()`, cached on first use.

    The key covers `name`, the start point (e.g. "scratch" with a config, or the tiny CLIP's checkpoint key), the
    data (`data_key`: anything JSON-able that identifies the pairs, e.g. a split fingerprint and a captions hash),
    the recipe, and the source of every plugged-in function. Returns (model with the trained weights, log).
    """
    key = content_key({"name": name, "start": start, "data": data_key, "recipe": _check_recipe(recipe),
                       "plugins": {k: code_fingerprint(f) for k, f in sorted(plugins.items())},
                       "torch": torch.__version__.split("+")[0]})

    def build() -> dict:
        model = build_model()
        log = train(model)
        return {"state_dict": model.state_dict(), "log": log, "key": key}

    path = cached_checkpoint(cache_dir("checkpoints") / f"trained-{name}-{key}.pt", build, what=f"trained {name}")
    stored = load_torch(path)
    model = build_model()
    model.load_state_dict(stored["state_dict"])
    model.eval()
    return model, stored["log"]


def captions_key(captions: Sequence[str]) -> str:
    """A short hash of a caption list, for `data_key`."""
    return hashlib.sha256("\x1f".join(captions).encode()).hexdigest()[:16]


def weights_key(model) -> str:
    """A short hash of a model's weights (every state-dict entry's name and bytes), for the identity of a trained
    model in evaluation caches: two runs with equal weights share their cached features, any change separates them."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).numpy())  # the buffer itself, no copy
    return digest.hexdigest()[:16]


class PreprocessedImages:
    """A real dataset's images as `train_clip`'s `images[indices]`: each batch opened and preprocessed on access, so
    a training set of tens of thousands of images (COCO, Flickr30k) is never held in memory."""

    def __init__(self, dataset, preprocess: Callable, size: int | None = None):
        self.dataset, self.preprocess = dataset, preprocess
        self.size = len(dataset) if size is None else min(size, len(dataset))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, indices) -> torch.Tensor:
        return torch.stack([self.preprocess(self.dataset[int(i)][0]) for i in indices])

