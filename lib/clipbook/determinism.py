"""Seeds and deterministic torch settings, so offline notebooks reproduce bit for bit."""
from __future__ import annotations

import os
import random
from contextlib import contextmanager

import numpy as np
import torch

# Results depend on how reductions are split across threads, so the thread count is part of the
# recipe: it is fixed, not taken from the machine.
DEFAULT_THREADS = int(os.environ.get("CLIPBOOK_THREADS", "2"))
# Many small steps (few-shot training, grid searches over ~1 M elements, 128-d probes) run on one thread: at that
# size a second thread costs more in synchronisation than it gains, and on a shared 2-core machine threads
# spin-waiting on each other made such loops up to 60x slower (measured by the coop, caps-adapter and nola
# notebooks). Encoding images keeps DEFAULT_THREADS.
SMALL_WORK_THREADS = 1
# Set in a forked worker (`clipbook.parallel`): no torch call there may use more threads. A fork keeps the parent's
# OpenMP state but not its threads, and the first multi-threaded region in the child then waits for them forever.
THREAD_CAP: int | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def deterministic_torch(threads: int = DEFAULT_THREADS):
    previous_threads = torch.get_num_threads()
    previous_mode = torch.are_deterministic_algorithms_enabled()
    previous_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.set_num_threads(threads if THREAD_CAP is None else min(threads, THREAD_CAP))
    # warn rather than fail for the few CUDA ops with no deterministic kernel (paper profile on a GPU)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also fills every new tensor with NaN so that a kernel reading memory it never wrote shows
    # up; no kernel we run does (results are bit-identical without it), and the fill cost about a tenth of a tiny
    # CLIP pretraining step on 2 cores (1,100 `fill_` calls a step)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_mode)
        torch.utils.deterministic.fill_uninitialized_memory = previous_fill
