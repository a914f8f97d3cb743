"""clipbook: a thin library under one reproducibility notebook per CLIP paper.

Folders show the architecture: toyworld/ (the procedural image-text world), models/ (loading and
the tiny CLIP), data/ (dataset registry, few-shot protocol), features, zeroshot, metrics,
baselines (shared by notebooks), report/ (records, figures, HTML), batch/ (papermill runs).
"""
__version__ = "0.1.0"

from clipbook.report.record import record  # noqa: E402,F401
from clipbook.session import preflight, setup, start  # noqa: E402,F401
