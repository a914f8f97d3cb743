"""Environment for every test session, notebooks (nbval) included.

Set here, before any kernel starts: HF_HUB_OFFLINE is read once when huggingface_hub is imported,
and progress bars must stay out of the outputs nbval compares.
"""
import os

import clipbook  # noqa: F401,E402 -- holds torch's CPU kernels to AVX2 (clipbook.CPU_KERNEL_ENV) before any torch op

os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                   "CLIPBOOK_PROGRESS": "0", "TQDM_DISABLE": "1", "PYTHONHASHSEED": "0"})


import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import pytest  # noqa: E402

# nbval time budget per notebook, all its cells together (seconds on 2 cores, with a warm cache): a notebook that
# grows past it fails here instead of silently stretching the suite toward CI's limit. The workbook's budget is
# 45 s warm per notebook; this leaves room for a cold feature cache on a fresh machine (CI's first run).
NOTEBOOK_BUDGET_S = 900
_spent: dict[str, float] = defaultdict(float)


def _notebook_of(item) -> str | None:
    return str(item.fspath) if type(item).__name__ == "NbCellItem" else None


def pytest_runtest_setup(item):
    notebook = _notebook_of(item)
    if notebook and _spent[notebook] > NOTEBOOK_BUDGET_S:
        pytest.fail(f"{notebook}: its cells took {_spent[notebook]:.0f} s, over the nbval budget of "
                    f"{NOTEBOOK_BUDGET_S} s per notebook")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    started = time.perf_counter()
    yield
    notebook = _notebook_of(item)
    if notebook:
        _spent[notebook] += time.perf_counter() - started


def pytest_collection_finish(session):
    """Build the shared checkpoints the collected notebooks declare (tiny CLIP, tiny SSL) before the first cell
    runs, as `invoke batch` does, so first-use pretraining is not charged to one notebook's budget."""
    from pathlib import Path

    notebooks = sorted({Path(str(item.fspath)) for item in session.items if _notebook_of(item)})
    if not notebooks:
        return
    from clipbook.batch.runner import prepare_shared_artifacts

    prepare_shared_artifacts("offline", notebooks, log=lambda line: print(line, flush=True))
