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


def test_deterministic_torch_skips_the_nan_fill_and_trains_to_the_same_bits():
    import torch.utils.deterministic as torch_deterministic

    from clipbook.models import tiny_clip

    def train_a_few_steps() -> list[torch.Tensor]:
        # the tiny CLIP's towers (convolutions, batch norm, attention, AdamW): what the library's pretraining runs
        torch.manual_seed(0)
        model = tiny_clip.create_tiny_clip().to(memory_format=torch.channels_last).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        pixels = torch.randn(8, 3, 64, 64).contiguous(memory_format=torch.channels_last)
        tokens = torch.randint(1, 400, (8, 32))
        tokens[:, 9] = 49407
        for _ in range(3):
            image, text = model.encode_image(pixels, normalize=True), model.encode_text(tokens, normalize=True)
            loss = -(image * text).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return [p.detach().clone() for p in model.parameters()]

    torch_deterministic.fill_uninitialized_memory = True  # torch's default: NaN-fill new tensors in deterministic mode
    with deterministic_torch(threads=1):
        assert torch_deterministic.fill_uninitialized_memory is False
        unfilled = train_a_few_steps()
    assert torch_deterministic.fill_uninitialized_memory is True  # restored
    with deterministic_torch(threads=1):
        torch_deterministic.fill_uninitialized_memory = True
        filled = train_a_few_steps()
    assert all(torch.equal(a, b) for a, b in zip(unfilled, filled))


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

