"""One classification harness for every notebook: a model on a registered dataset.

    task = ClassificationTask(loaded, "toy")
    x_test, y_test = task.features("test")               # cached, L2-normalised
    task.zero_shot_accuracy()                             # CLIP's prompt-ensembled zero-shot classifier
    split = task.few_shot_split(16, seed=1)               # CoOp protocol indices into train / val
    x, y = task.few_shot_features(split["train"], augment_scale=(0.5, 1.0), passes=10)
    base, new = task.base_new_classes()                   # CoOp's base-to-new class halves
    task.accuracy(logits, y_test, classes=new)            # accuracy among a subset of classes

Datasets follow one protocol: `classnames`, `labels`, `templates` (their zero-shot prompt templates) and
`fingerprint()`. Splits are loaded on first use; the validation split name is configurable because some
protocols validate on another split (ImageNet's val is its test set in CoOp/GDA).
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from clipbook import features as feature_cache
from clipbook import metrics, zeroshot
from clipbook.data import fewshot, registry
from clipbook.models.loader import LoadedModel


class ClassificationTask:
    """One model on one dataset: splits, templates, zero-shot weights, cached features, accuracy over
    class subsets.

    Args:
        loaded: the model (clipbook.models.loader.load_model).
        dataset: a registry name.
        templates: zero-shot prompt templates; default: the dataset's own.
        split_names: the protocol's names for train / val / test, mapped to registry split names.
    """

    def __init__(self, loaded: LoadedModel, dataset: str, *, templates: list[str] | None = None,
                 split_names: dict[str, str] | None = None):
        self.loaded, self.dataset_name = loaded, dataset
        self.model_name = loaded.name
        self.split_names = {"train": "train", "val": "val", "test": "test", **(split_names or {})}
        self._templates = templates
        self._splits: dict[str, object] = {}

    def split(self, name: str):
        """The dataset of a protocol split ("train", "val", "test" or a registry split name)."""
        registry_name = self.split_names.get(name, name)
        if registry_name not in self._splits:
            self._splits[registry_name] = registry.load_dataset(self.dataset_name, registry_name)
        return self._splits[registry_name]

    @property
    def classnames(self) -> list[str]:
        return list(self.split("test").classnames)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    @property
    def templates(self) -> list[str]:
        return list(self._templates or getattr(self.split("test"), "templates", None) or zeroshot.TOY_TEMPLATES)

    @cached_property
    def text_weights(self) -> torch.Tensor:
        """(D, K) zero-shot classifier: CLIP's prompt ensemble over `templates`."""
        return zeroshot.zero_shot_classifier(self.loaded, self.classnames, self.templates)

    def labels(self, split: str) -> torch.Tensor:
        return torch.as_tensor(np.asarray(self.split(split).labels))

    def features(self, split: str, indices=None, *, transform=None, augment_pass: int | None = None):
        """(features (N, D), labels (N,)) of a split, or of `indices` into it; encoded once and cached."""
        dataset = self.split(split)
        x = feature_cache.image_features(self.loaded, dataset, indices=indices, transform=transform,
                                         augment_pass=augment_pass)
        y = self.labels(split)
        return x, (y if indices is None else y[torch.as_tensor(np.asarray(indices, dtype=np.int64))])

    def few_shot_split(self, shots: int, seed: int) -> dict[str, np.ndarray]:
        """CoOp protocol: k shots per class from train, min(k, 4) from val (clipbook.data.fewshot)."""
        return fewshot.coop_few_shot_split(self.split("train").labels, self.split("val").labels, shots, seed)

    def few_shot_features(self, indices, *, augment_scale: tuple[float, float] | None = None, passes: int = 1):
        """Features of the k-shot train images: one eval pass, or `passes` random-resized-crop passes of
        `augment_scale` (Tip-Adapter/GDA's augmentation), concatenated with their repeated labels."""
        if augment_scale is None:
            return self.features("train", indices)
        augment = feature_cache.augment_transform(self.loaded, scale=tuple(augment_scale))
        encoded = [self.features("train", indices, transform=augment, augment_pass=p) for p in range(passes)]
        return torch.cat([x for x, _ in encoded]), torch.cat([y for _, y in encoded])

    def zero_shot_logits(self, split: str = "test") -> torch.Tensor:
        x, _ = self.features(split)
        return zeroshot.zero_shot_logits(x, self.text_weights)

    def zero_shot_accuracy_of(self, image_features: torch.Tensor, split: str = "test") -> float:
        """Zero-shot accuracy (%) of a split encoded elsewhere (a notebook that renders a toy set once for
        several models): the same prompt ensemble and scale as `zero_shot_accuracy`, on `image_features`."""
        if len(image_features) != len(self.split(split)):
            raise ValueError(f"{self.dataset_name} {split} has {len(self.split(split))} images; got "
                             f"{len(image_features)} features")
        return self.accuracy(zeroshot.zero_shot_logits(image_features, self.text_weights), self.labels(split))

    def zero_shot_accuracy(self, split: str = "test", classes=None) -> float:
        return self.accuracy(self.zero_shot_logits(split), self.labels(split), classes=classes)

    def base_new_classes(self) -> tuple[list[int], list[int]]:
        """CoOp/CoCoOp's base-to-new halves: the first ceil(K/2) labels are base (Dassl `subsample_classes`)."""
        half = (self.num_classes + 1) // 2
        return list(range(half)), list(range(half, self.num_classes))

    @staticmethod
    def accuracy(logits: torch.Tensor, labels, classes=None) -> float:
        """Top-1 accuracy (%); with `classes`, among those classes only: images of other classes are dropped
        and the argmax runs over the subset's logits (the base-to-new protocol)."""
        labels = torch.as_tensor(np.asarray(labels))
        if classes is None:
            return metrics.accuracy(logits, labels)
        classes = torch.as_tensor(list(classes))
        keep = torch.isin(labels, classes)
        if not keep.any():
            raise ValueError("none of the labels belongs to the requested classes")
        predicted = classes[logits[keep][:, classes].argmax(dim=1)]
        return metrics.accuracy(predicted, labels[keep])
