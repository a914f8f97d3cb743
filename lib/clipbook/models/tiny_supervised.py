"""The library's tiny supervised classifier: the supervised counterpart of the tiny CLIP.

Robustness papers compare zero-shot CLIP with ImageNet-supervised models (Radford et al. 2021 §3.3; Tu et al.
2024). Offline, the counterpart is the tiny CLIP's own image tower (open_clip's ModifiedResNet of
`clipbook-tiny-rn`, randomly initialised) with a linear head on its 128-d output, trained with cross-entropy on
the images the tiny CLIP saw of the generic family (its share of the "pretrain" split, every style it comes in,
about 15,000 images) with their class labels. The recipe is the tiny CLIP's optimiser (AdamW, learning rate 3e-3
with 30 warm-up steps and cosine decay, weight decay 0.1 on weights only, batch 128, no augmentation) for 2 passes
(the tiny CLIP makes 4.2): about 2 minutes on 2 cores. Like the tiny CLIP, the checkpoint is content-addressed by
(config, recipe with seed, world version, torch) and built once on first use, under a file lock, written
atomically (`pretraining.toyworld_checkpoint`).

    loaded = load_tiny_supervised()                  # .model.encode_image(x) -> class logits (N, 20)
    features.image_features(loaded, dataset, normalize=False)   # the logits, cached like any model's features
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from clipbook.cache import load_torch
from clipbook.determinism import deterministic_torch, seed_everything
from clipbook.models import pretraining, tiny_clip
from clipbook.models.loader import TINY_TAG, LoadedModel
from clipbook.progress import progress
from clipbook.toyworld import splits as toy_splits
from clipbook.toyworld import world

TINY_SUPERVISED_NAME = "clipbook-tiny-rn-supervised"
# the whole tiny CLIP is built (and its text tower dropped) so that the tower's and the head's initial weights
# follow from the seed exactly as in the tiny CLIP: its text config is part of what determines the model
TINY_SUPERVISED_CONFIG = {"tower_of": tiny_clip.TINY_CLIP_NAME, "clip": tiny_clip.TINY_CLIP_CONFIG, "head": "linear"}
PRETRAIN = {
    "split": "pretrain",
    "family": "objects",  # the generic family: its 20 classes are the toy dataset's label space
    "epochs": 2,  # 236 steps; a 64-step run reached 16.5 % in-domain, below zero-shot CLIP (holistic-robustness)
    "batch_size": 128,
    "lr": 3e-3,
    "weight_decay": 0.1,
    "warmup_steps": 30,
    "seed": 0,
}


class SupervisedClassifier(nn.Module):
    """An image tower and a linear head; `encode_image` returns class logits, so the library's feature cache
    stores a set's logits like any model's features."""

    def __init__(self, visual: nn.Module, num_classes: int):
        super().__init__()
        self.visual = visual
        self.head = nn.Linear(visual.output_dim, num_classes)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.visual(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_image(images)


def build_tiny_classifier(num_classes: int) -> SupervisedClassifier:
    """The tiny CLIP's image tower plus a linear head, randomly initialised (seed torch first for a fixed init)."""
    import open_clip

    tiny_clip.register_tiny_configs()
    with tiny_clip.quiet_open_clip():  # a fresh model has no pretrained weights: that is the point
        tower = open_clip.create_model(tiny_clip.TINY_CLIP_NAME, pretrained=None).visual
    return SupervisedClassifier(tower, num_classes)


def _num_classes(recipe: dict) -> int:
    return len(world.FAMILY_CLASSES[recipe["family"]])


def pretrain(recipe: dict | None = None, *, show_progress: bool = True) -> dict:
    """Train the classifier with cross-entropy on the recipe's family images of its split.

    Args:
        recipe: overrides of `PRETRAIN`.
        show_progress: show a progress bar.

    Returns:
        The state dict, the per-step loss, the full recipe and the number of training images.
    """
    recipe = {**PRETRAIN, **(recipe or {})}
    if recipe["family"] not in world.FAMILY_CLASSES:
        raise ValueError(f"unknown family {recipe['family']!r}; known: {', '.join(world.FAMILY_CLASSES)}")
    scenes = [s for s in toy_splits.scenes(recipe["split"]) if s.family == recipe["family"]]
    images = np.concatenate([world.render_batch(scenes[i:i + 1024])[0] for i in range(0, len(scenes), 1024)])
    # channels-last convolutions, as the tiny CLIP's pretraining
    pixels = tiny_clip.images_to_tensor(images).contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([s.label for s in scenes])
    n, batch_size = len(pixels), recipe["batch_size"]
    steps_per_epoch = n // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{n} {recipe['family']} images in split {recipe['split']!r}: fewer than one batch of "
                         f"{batch_size}")
    with deterministic_torch():
        seed_everything(recipe["seed"])
        model = build_tiny_classifier(_num_classes(recipe)).to(memory_format=torch.channels_last)
        # as open_clip's trainer: no weight decay on gains and biases
        decay = [p for p in model.parameters() if p.ndim >= 2]
        no_decay = [p for p in model.parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": recipe["weight_decay"]},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=recipe["lr"])
        generator = torch.Generator().manual_seed(recipe["seed"])
        total = int(steps_per_epoch * recipe["epochs"])
        log = []
        model.train()
        bar = progress(total=total, desc="pretraining tiny supervised classifier", disable=not show_progress)
        for step in range(total):
            if step % steps_per_epoch == 0:  # a fresh shuffle every epoch
                order = torch.randperm(n, generator=generator)
            batch = order[(step % steps_per_epoch) * batch_size:(step % steps_per_epoch + 1) * batch_size]
            for group in optimizer.param_groups:
                group["lr"] = tiny_clip.cosine_lr(step, total, recipe["lr"], recipe["warmup_steps"])
            loss = F.cross_entropy(model.encode_image(pixels[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            log.append(loss.item())
            bar.update(1)
        bar.close()
        model.eval()
    model = model.to(memory_format=torch.contiguous_format)
    return {"state_dict": model.state_dict(), "loss": log, "recipe": recipe, "images": n}


def checkpoint_key(recipe: dict | None = None) -> str:
    return pretraining.checkpoint_key(TINY_SUPERVISED_NAME, TINY_SUPERVISED_CONFIG, {**PRETRAIN, **(recipe or {})})


def tiny_supervised_checkpoint(recipe: dict | None = None, *, show_progress: bool = True) -> str:
    """Path of the trained classifier's checkpoint (state dict, loss log, recipe, number of training images),
    training it on first use (see the module docstring)."""
    return pretraining.toyworld_checkpoint(TINY_SUPERVISED_NAME, TINY_SUPERVISED_CONFIG,
                                          {**PRETRAIN, **(recipe or {})}, pretrain,
                                          what="tiny supervised classifier", show_progress=show_progress)


def load_tiny_supervised(recipe: dict | None = None, *, device: str = "cpu",
                         show_progress: bool = True) -> LoadedModel:
    """The trained classifier in eval mode with the tiny CLIP's eval preprocessing (the normalisation it was
    trained with).

    Args:
        recipe: overrides of `PRETRAIN` (another recipe is another cached model).
        device: where to put the model.
        show_progress: show a progress bar if the classifier has to be trained.

    Returns:
        A LoadedModel without a tokenizer; `.model.encode_image` gives class logits, `identity` keys the feature
        cache (and is noted in the results record's provenance).
    """
    from open_clip.transform import PreprocessCfg, image_transform_v2

    from clipbook.report import provenance

    recipe = {**PRETRAIN, **(recipe or {})}
    path = tiny_supervised_checkpoint(recipe, show_progress=show_progress)
    model = build_tiny_classifier(_num_classes(recipe))
    model.load_state_dict(load_torch(path)["state_dict"])
    model.eval().to(device)
    # the tiny CLIP's eval transform (what create_model_and_transforms builds from the tower's config): CLIP's
    # mean and std, as the classifier was trained
    preprocess = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
    identity = {"name": TINY_SUPERVISED_NAME, "weights": f"{TINY_TAG}:{Path(path).stem}"}
    provenance.note_model(identity)
    return LoadedModel(model=model, preprocess=preprocess, tokenizer=None, name=TINY_SUPERVISED_NAME,
                       pretrained=TINY_TAG, identity=identity)
