"""Datasets: the registry (`registry.load_dataset`) and one module per kind, each registering itself.

Importing this package imports every kind, so `registry.DATASETS` is complete after `import clipbook.data`.
"""
from clipbook.data import (  # noqa: F401  (each registers its kind and datasets)
    captions, chest_xray, cue_conflict, fas, feature_arrays, groups, mmvp, packaged, prompt_images, real, segmentation,
    toy, toy_segmentation)
