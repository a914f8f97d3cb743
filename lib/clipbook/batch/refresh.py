"""Refresh the outputs stored in notebooks/: re-execute in place under the offline profile.

The stored outputs are what readers see on opening a notebook and what nbval checks, so they are
written without volatile metadata (papermill timings, execution timestamps) to keep diffs clean.
"""
from __future__ import annotations

import os
from pathlib import Path

from clipbook.batch.runner import kernel_environment

VOLATILE_NOTEBOOK_KEYS = ("papermill",)
VOLATILE_CELL_KEYS = ("papermill", "execution")


def strip_volatile_metadata(notebook) -> None:
    for key in VOLATILE_NOTEBOOK_KEYS:
        notebook.metadata.pop(key, None)
    for cell in notebook.cells:
        for key in VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
        if "tags" in cell.metadata and not cell.metadata["tags"]:
            del cell.metadata["tags"]


def refresh_notebook(path: Path) -> None:
    import nbformat
    import papermill
    from jupytext.cli import jupytext

    path = Path(path)
    paired = path.with_suffix(".py")
    if paired.exists() and paired.stat().st_mtime > path.stat().st_mtime:
        # the script is newer: take its inputs, keep the notebook's outputs until re-executed
        jupytext(["--sync", str(paired)])
    os.environ.update(kernel_environment("offline"))
    papermill.execute_notebook(str(path), str(path), kernel_name="python3", cwd=str(path.parent),
                               progress_bar=False, log_output=False)
    notebook = nbformat.read(path, as_version=4)
    strip_volatile_metadata(notebook)
    nbformat.write(notebook, path)
    jupytext(["--sync", str(path)])
