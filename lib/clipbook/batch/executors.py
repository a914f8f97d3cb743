"""Where the batch's notebooks run: the executors `invoke batch --executor NAME` chooses from.

An executor gets the papers left to run ({slug: parameters}) and calls `finished(slug, record)` once per paper,
whatever happens to it; the runner does everything else (planning, resume, records, the report), so every
executor has the same semantics. Each has two methods:

    check(root, profile, todo)               raise BatchInputError before anything heavy starts
    run(root, profile, todo, finished, log)  run the papers; return when every one has a record
"""
from __future__ import annotations

import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, fields
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from clipbook.batch.profiles import BatchInputError
from clipbook.batch.runner import rehearsal_threads, run_one
from clipbook.batch.slurm import SlurmExecutor


@dataclass(frozen=True)
class LocalExecutor:
    """Notebooks in `workers` processes on this machine, each with its own kernel."""
    workers: int = 1

    def check(self, root: Path, profile: str, todo: dict[str, dict]) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise BatchInputError(f"workers must be a positive integer, got {self.workers!r}")

    def run(self, root: Path, profile: str, todo: dict[str, dict], finished: Callable[[str, dict], None],
            log: Callable[[str], None]) -> None:
        context = get_context("spawn")
        workers = min(self.workers, max(1, len(todo)))
        threads = rehearsal_threads(profile, workers)
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(run_one, str(root), slug, params, profile, None, threads): slug
                       for slug, params in todo.items()}
            for future in as_completed(futures):
                try:
                    record = future.result()
                except Exception:  # the worker process itself died
                    record = {"status": "failed", "error": traceback.format_exc(limit=1), "runtime_s": 0.0,
                              "input_hash": ""}
                finished(futures[future], record)


EXECUTORS: dict[str, type] = {"local": LocalExecutor, "slurm": SlurmExecutor}


def make_executor(name: str, **options) -> LocalExecutor | SlurmExecutor:
    """The executor `name` with its options; options left at None take the executor's defaults.

    Raises:
        BatchInputError: an unknown executor, or an option that does not apply to it (`--partition` with `local`).
    """
    if name not in EXECUTORS:
        raise BatchInputError(f"unknown executor {name!r}; accepted executors: {', '.join(EXECUTORS)}")
    executor = EXECUTORS[name]
    accepted = {field.name for field in fields(executor)}
    given = {key: value for key, value in options.items() if value is not None}
    stray = sorted(set(given) - accepted)
    if stray:
        raise BatchInputError(f"{', '.join(stray)} does not apply to the {name} executor; "
                              f"its options: {', '.join(sorted(accepted)) or 'none'}")
    return executor(**given)
