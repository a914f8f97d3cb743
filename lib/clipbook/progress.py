"""Progress bars that show for people and stay out of stored notebook outputs.

Batch runs and nbval set CLIPBOOK_PROGRESS=0: a bar's text changes from run to run, which would
make the committed outputs of notebooks/ unreproducible.
"""
from __future__ import annotations

import os


def progress_enabled() -> bool:
    return os.environ.get("CLIPBOOK_PROGRESS", "1") not in ("0", "false", "no")


def progress(iterable=None, *, disable: bool = False, **kwargs):
    if disable or not progress_enabled():
        from tqdm import tqdm  # tqdm.auto would probe for notebook widgets, and warn, for nothing

        return tqdm(iterable, disable=True, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)
