import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import clipbook
from clipbook.determinism import deterministic_torch, seed_everything


def test_seed_everything_reproduces_every_generator():
    def draw():
        import random

        return random.random(), float(np.random.rand()), float(torch.rand(1))

    seed_everything(7)
    first = draw()
    seed_everything(7)
    assert draw() == first
    seed_everything(8)
    assert draw() != first


def test_deterministic_torch_sets_and_restores_threads_and_mode():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(False)
    with deterministic_torch(threads=2):
        assert torch.get_num_threads() == 2 and torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == 1 and not torch.are_deterministic_algorithms_enabled()


def test_importing_clipbook_holds_torch_cpu_kernels_to_avx2_unless_the_user_chose():
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("the pin is for x86 CPUs with AVX2")
    probe = "import clipbook, torch; print(torch.backends.cpu.get_cpu_capability())"
    clean = {k: v for k, v in os.environ.items() if k not in clipbook.CPU_KERNEL_ENV}
    pinned = subprocess.run([sys.executable, "-c", probe], env=clean, capture_output=True, text=True, check=True)
    assert pinned.stdout.strip() == "AVX2"
    chosen = subprocess.run([sys.executable, "-c", probe], env={**clean, "ATEN_CPU_CAPABILITY": "default"},
                            capture_output=True, text=True, check=True)
    assert chosen.stdout.strip() == "DEFAULT"

