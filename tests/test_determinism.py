import numpy as np
import torch

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
