"""clipbook: a thin library under one reproducibility notebook per CLIP paper.

Folders show the architecture: toyworld/ (the procedural image-text world), models/ (loading and
the tiny CLIP), data/ (dataset registry, few-shot protocol), features, zeroshot, metrics,
baselines (shared by notebooks), report/ (records, figures, HTML), batch/ (papermill runs).
"""
__version__ = "0.1.0"

import os  # noqa: E402

# The CPU kernels are part of the recipe. Training the tiny models is chaotic: the rounding of AVX-512 kernels
# against AVX2 ones moved the tiny CLIP's toy zero-shot accuracy by twelve points, so the stored outputs that nbval
# checks were only reproducible on the CPU type that made them. Every x86 CPU this project runs on has AVX2, so
# ATen's vectorised kernels, oneDNN's convolutions and MKL's GEMM (conditional numerical reproducibility) are held
# to that instruction set. They are read at the first torch operation, so this comes before any torch import;
# setdefault leaves a user's own choice alone.
CPU_KERNEL_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
for _name, _value in CPU_KERNEL_ENV.items():
    os.environ.setdefault(_name, _value)

from clipbook.report.record import record  # noqa: E402,F401
from clipbook.session import preflight, setup, start  # noqa: E402,F401
