import os

import pytest
import torch

from clipbook import parallel


def _train_one(seed: int) -> torch.Tensor:
    """A few SGD steps of a small model: a job whose result depends on every float operation."""
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.randn(64, 16, generator=generator), torch.randint(3, (64,), generator=generator)
    weight = torch.zeros(16, 3, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    for _ in range(20):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(x @ weight, y).backward()
        optimizer.step()
    return weight.detach()


def test_forked_map_equals_the_sequential_loop_bit_for_bit():
    jobs = [3, 1, 4, 1, 5]
    expected = [_train_one(seed) for seed in jobs]
    forked = parallel.map_jobs(_train_one, jobs, workers=2)
    assert len(forked) == len(expected)
    assert all(torch.equal(a, b) for a, b in zip(forked, expected))


def test_jobs_run_in_other_processes_and_see_the_parents_state():
    parent_only = {"value": 41}  # a closure over unpicklable-by-reference state, as a notebook's would be
    pids = parallel.map_jobs(lambda job: (os.getpid(), parent_only["value"] + job), [1, 1, 1, 1], workers=2)
    assert {value for _, value in pids} == {42}
    assert os.getpid() not in {pid for pid, _ in pids}


def test_one_worker_or_a_gpu_runs_in_this_process():
    assert parallel.map_jobs(lambda job: os.getpid(), [0, 1], workers=1) == [os.getpid()] * 2
    assert parallel.map_jobs(lambda job: os.getpid(), [0, 1], workers=2, device="cuda") == [os.getpid()] * 2


def test_worker_count_is_capped_by_the_jobs_and_read_from_the_environment(monkeypatch):
    assert parallel.worker_count(1, 8) == 1
    monkeypatch.setenv("CLIPBOOK_WORKERS", "3")
    assert parallel.worker_count(10) == 3


def test_a_failing_job_raises_in_the_parent():
    def fail(job):
        raise ValueError(f"job {job} failed")

    with pytest.raises(ValueError, match="job 0 failed"):
        parallel.map_jobs(fail, [0, 1], workers=2)


def test_a_worker_never_runs_torch_on_more_threads_than_the_cap():
    from clipbook.determinism import deterministic_torch

    torch.ones(4096, 4096).sum()  # the parent's thread pool exists before the fork

    def threads_inside(job):
        with deterministic_torch(2):
            torch.ones(2048, 2048).sum()  # a multi-threaded region here would hang a fork
            return torch.get_num_threads()

    assert parallel.map_jobs(threads_inside, [0, 1], workers=2) == [1, 1]
