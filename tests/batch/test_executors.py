"""Choosing an executor: names and options are checked before any work (the executors run in test_runner
and test_slurm)."""
import pytest

from clipbook.batch.executors import LocalExecutor, make_executor
from clipbook.batch.profiles import BatchInputError
from clipbook.batch.slurm import SlurmExecutor


def test_executors_are_made_by_name_with_their_own_options_only():
    assert make_executor("local") == LocalExecutor(workers=1)
    assert make_executor("local", workers=3, partition=None) == LocalExecutor(workers=3)
    assert make_executor("slurm", partition="gpu", account="lab") == SlurmExecutor(partition="gpu", account="lab")
    with pytest.raises(BatchInputError, match="unknown executor 'pbs'; accepted executors: local, slurm"):
        make_executor("pbs")
    with pytest.raises(BatchInputError, match="partition does not apply to the local executor; its options: workers"):
        make_executor("local", partition="gpu")
    with pytest.raises(BatchInputError, match="workers does not apply to the slurm executor"):
        make_executor("slurm", workers=2)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_the_local_executor_refuses_a_bad_worker_count(tmp_path, workers):
    with pytest.raises(BatchInputError, match=f"workers must be a positive integer, got {workers!r}"):
        LocalExecutor(workers=workers).check(tmp_path, "offline", {})
