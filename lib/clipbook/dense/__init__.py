"""Dense and region-level inference for the open-vocabulary segmentation and region papers: sliding windows,
region and mask pooling. The metrics live in `clipbook.evaluation.segmentation`."""
