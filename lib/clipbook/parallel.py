"""Independent CPU jobs on every core: forked worker processes, one thread each.

Few-shot training is many small steps. Inside one process a second torch thread costs more than it gains
(`determinism.SMALL_WORK_THREADS`), so a notebook's independent runs (shot counts, seeds, datasets) use the other
core as a second process instead. Each job runs in its own fork: it inherits the notebook's state (models, tasks,
cached features), so neither the function nor the job is pickled, only its result. That keeps it usable from a
notebook, whose functions live in `__main__` and could not be sent to a spawned process.

Each job runs single-threaded (every torch call: `determinism.THREAD_CAP`) in a fresh fork of the same parent
state, so a result does not depend on how many workers there are or which one ran it: it is the one a sequential,
single-threaded loop gives.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
from multiprocessing.connection import wait
from typing import Any, Callable, Sequence

import torch

from clipbook import determinism
from clipbook.determinism import DEFAULT_THREADS, SMALL_WORK_THREADS


def _child(function: Callable, job: Any, sender) -> None:
    determinism.THREAD_CAP = SMALL_WORK_THREADS  # this process only: it is a fork
    torch.set_num_threads(SMALL_WORK_THREADS)
    try:
        outcome = (True, function(job))
    except BaseException as error:  # noqa: BLE001 - handed to the parent, which raises it
        outcome = (False, error)
    # plain pickle, which copies tensors: torch's own reducer would share them through this process's memory,
    # gone once it exits
    try:
        message = pickle.dumps(outcome)
    except Exception as error:  # an unpicklable result or exception
        message = pickle.dumps((False, RuntimeError(f"{type(error).__name__}: {error} (sending {outcome[1]!r:.200})")))
    sender.send_bytes(message)


def worker_count(jobs: int, workers: int | None = None) -> int:
    """How many processes a map of `jobs` uses: `workers`, else CLIPBOOK_WORKERS, else the library's core count."""
    chosen = workers if workers is not None else int(os.environ.get("CLIPBOOK_WORKERS", DEFAULT_THREADS))
    return max(1, min(jobs, chosen))


def map_jobs(function: Callable, jobs: Sequence, workers: int | None = None, device: str = "cpu") -> list:
    """[function(job) for job in jobs], on up to `workers` forked CPU processes; in order.

    Put the most expensive jobs first: they are started in order, each as soon as a process is free. Results must
    be picklable (return tensors and numbers, not models). A job's exception is raised here. On a GPU, or with one
    worker, the loop runs in this process.
    """
    count = worker_count(len(jobs), workers)
    if count == 1 or device != "cpu" or "fork" not in multiprocessing.get_all_start_methods():
        return [function(job) for job in jobs]
    # One fork per job, made from this thread with no helper threads of ours running (a fork made while another
    # thread holds a lock deadlocks the child): multiprocessing.Pool re-forks from beside its own threads.
    context = multiprocessing.get_context("fork")
    waiting, running, results = list(enumerate(jobs)), {}, [None] * len(jobs)
    try:
        while waiting or running:
            while waiting and len(running) < count:
                index, job = waiting.pop(0)
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_child, args=(function, job, sender), daemon=True)
                process.start()
                sender.close()
                running[receiver] = (index, process)
            for receiver in wait(list(running)):
                index, process = running.pop(receiver)
                try:
                    succeeded, value = pickle.loads(receiver.recv_bytes())
                except EOFError:
                    succeeded, value = False, RuntimeError(f"job {index} died without a result")
                process.join()
                if not succeeded:
                    raise value
                results[index] = value
    finally:
        for index, process in running.values():
            process.kill()
            process.join()
    return results
