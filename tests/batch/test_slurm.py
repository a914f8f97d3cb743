"""The Slurm executor against a real Slurm: the single-node cluster `.ci/slurm-up` starts (CI runs it first).

Policy: without a reachable Slurm these tests fail, with the reason, when CI or CLIPBOOK_REQUIRE_SLURM is set
(CI must never pass them by skipping); elsewhere they skip with the reason and the command that starts one.
"""
import html
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from clipbook.batch import runner, slurm
from clipbook.batch.executors import make_executor
from clipbook.batch.profiles import BatchInputError, JobResources
from tests.batch.notebooks import write_notebook

ROOT = Path(__file__).resolve().parents[2]
QUICK_GDA = "seeds: [1]\nshots: [1, 2]\naugment_epochs: 2\n"
# a paper that records fixed rows and one claim, and the CUDA_VISIBLE_DEVICES its kernel started with
FAST = ("import os\nimport clipbook\nsession = clipbook.start(SPEC, globals())\n"
        "rows = [{'model': 'm', 'dataset': 'd', 'method': method, 'metric': 'accuracy', 'value': value, 'seed': seed}\n"
        "        for method, base in (('A', 60.0), ('B', 50.0)) for seed, value in ((1, base), (2, base + 1))]\n"
        "visible = os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')\n"
        "clipbook.record(session, rows=rows, claims=CLAIMS, notes=f'CUDA_VISIBLE_DEVICES={visible!r}')")
# the same, once the test removes the file `hold` next to it (at most 90 s)
SLOW = ("import pathlib, time\ndeadline = time.time() + 90\n"
        "while pathlib.Path('hold').exists() and time.time() < deadline:\n    time.sleep(0.2)\n") + FAST
VOLATILE = {"runtime_s", "provenance", "job", "html", "notes"}


def _slurm_problem() -> str | None:
    missing = [command for command in (*slurm.SLURM_COMMANDS, "sinfo", "scancel") if shutil.which(command) is None]
    if missing:
        return f"Slurm commands not found: {', '.join(missing)}"
    nodes = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True)
    if nodes.returncode != 0:
        return f"sinfo failed: {nodes.stderr.strip()}"
    if not {"idle", "mixed", "allocated"} & set(nodes.stdout.split()):
        return f"no Slurm node is up (sinfo: {nodes.stdout.split() or 'no nodes'})"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = _slurm_problem()
    if problem:
        message = f"{problem}; start a single-node Slurm with `sudo .ci/slurm-up`"
        if os.environ.get("CI") or os.environ.get("CLIPBOOK_REQUIRE_SLURM"):
            pytest.fail(f"Slurm is required here (CI or CLIPBOOK_REQUIRE_SLURM is set): {message}")
        pytest.skip(message)


def _workbook(root: Path) -> Path:
    (root / "notebooks" / "profiles" / "offline").mkdir(parents=True)
    claims = 'from clipbook.claims import Claim\nCLAIMS = [Claim("a-beats-b", "A beats B", "A", "B", margin=1.0)]'
    for slug, body in (("fast", FAST), ("slow", SLOW)):
        write_notebook(root / "notebooks" / f"{slug}.ipynb", body, title=f"# {slug}", claims=claims, needs=", needs=()")
    return root


def _comparable(results: dict) -> dict:
    return {slug: {key: value for key, value in paper.items() if key not in VOLATILE}
            for slug, paper in results["papers"].items()}


def _slurm(**options):
    return make_executor("slurm", poll_s=0.3, **options)


@pytest.mark.slurm
def test_a_slurm_batch_records_the_same_results_as_a_local_one(cluster, tmp_path):
    workbook = _workbook(tmp_path)
    shutil.copy(ROOT / "notebooks" / "gda.ipynb", workbook / "notebooks" / "gda.ipynb")
    (workbook / "notebooks" / "profiles" / "offline" / "gda.yaml").write_text(QUICK_GDA)
    local = runner.run_batch(workbook, papers=["gda", "fast"], log=lambda line: None)
    local_index = (workbook / "reports/offline/index.html").read_text()
    logs = []
    remote = runner.run_batch(workbook, papers=["gda", "fast"], force=True, executor=_slurm(), log=logs.append)

    assert {paper["status"] for paper in remote["papers"].values()} == {"ok"}, remote["papers"]
    assert _comparable(remote) == _comparable(local)  # rows, claims and verdicts, reported rows, comparison
    remote_index = (workbook / "reports/offline/index.html").read_text()
    for slug in ("gda", "fast"):  # both indexes show each paper with the same claims and verdicts
        for index in (local_index, remote_index):
            assert f"{slug}.html" in index
            for claim in remote["papers"][slug]["claims"]:
                assert html.escape(claim["statement"], quote=False) in index and claim["verdict"] in index
    fast = json.loads((workbook / "reports/offline/records/fast.json").read_text())
    assert fast["notes"] == "CUDA_VISIBLE_DEVICES=''"  # set before the kernel started: a CPU job sees no GPU
    assert local["papers"]["fast"]["notes"] != fast["notes"]
    # one array for both papers; each job's log exists and is linked from its page
    job_ids = {remote["papers"][slug]["job"]["id"] for slug in ("gda", "fast")}
    assert len({job_id.split("_")[0] for job_id in job_ids}) == 1
    for slug in ("gda", "fast"):
        job = remote["papers"][slug]["job"]
        assert (workbook / "reports/offline" / job["log"]).stat().st_size > 0
        page = (workbook / f"reports/offline/{slug}.html").read_text()
        assert f'href="{job["log"]}"' in page or f"href='{job['log']}'" in page
    assert sum(line.startswith("[submitted]") for line in logs) == 2
    # the profile's resources reached Slurm (no _resources.yaml here: JobResources' defaults)
    granted = subprocess.run(["scontrol", "show", "job", "--oneliner", job_ids.pop()], capture_output=True,
                             text=True).stdout.split()
    assert {"NumCPUs=1", "MinMemoryNode=4G", "TimeLimit=00:30:00"} <= set(granted), granted


def _batch_in_background(workbook, papers):
    """A Slurm batch running in a thread, and the dict its results land in."""
    outcome = {}
    batch = threading.Thread(target=lambda: outcome.update(runner.run_batch(
        workbook, papers=papers, executor=_slurm(), log=lambda line: None)))
    batch.start()
    return batch, outcome


@pytest.mark.slurm
def test_a_cancelled_job_is_reported_failed_with_the_reason_and_the_next_batch_reruns_it(cluster, tmp_path):
    workbook = _workbook(tmp_path)
    hold = workbook / "notebooks" / "hold"
    hold.touch()
    batch, outcome = _batch_in_background(workbook, ["fast", "slow"])
    job_id = _wait_until_running(workbook, "slow")
    statuses = slurm.jobs_in_flight(workbook, "offline")
    assert statuses["slow"] == {**statuses["slow"], "id": job_id, "state": "running"}  # what `invoke status` shows
    with pytest.raises(BatchInputError, match="already in flight: slow"):  # no second submission meanwhile
        runner.run_batch(workbook, papers=["slow"], executor=_slurm(), log=lambda line: None)
    subprocess.run(["scancel", job_id], check=True)
    batch.join(timeout=120)
    assert not batch.is_alive()

    slow = outcome["papers"]["slow"]
    assert slow["status"] == "failed" and f"Slurm job {job_id} ended CANCELLED" in slow["error"], slow.get("error")
    assert [claim["verdict"] for claim in slow["claims"]] == ["not tested"]
    assert outcome["papers"]["fast"]["status"] == "ok"
    assert slurm.jobs_in_flight(workbook, "offline") == {}

    hold.unlink()
    logs = []
    again = runner.run_batch(workbook, papers=["fast", "slow"], executor=_slurm(), log=logs.append)
    assert any(line.startswith("[skip] fast") for line in logs)
    assert again["papers"]["slow"]["status"] == "ok" and again["papers"]["slow"]["job"]["id"] != job_id


@pytest.mark.slurm
def test_a_job_reaching_its_time_limit_is_reported_failed_not_requeued(cluster, tmp_path):
    workbook = _workbook(tmp_path)
    (workbook / "notebooks" / "profiles" / "offline" / "_resources.yaml").write_text(
        "papers:\n  slow: {time_min: 5}\n")
    (workbook / "notebooks" / "hold").touch()
    batch, outcome = _batch_in_background(workbook, ["slow"])
    job_id = _wait_until_running(workbook, "slow")
    # what Slurm sends 90 s before the time limit (submitit's --signal=USR2@90), sent early; with a limit this
    # short submitit takes any such signal for the time limit (a long job's early one for a preemption)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    batch.join(timeout=120)
    assert not batch.is_alive()
    slow = outcome["papers"]["slow"]
    assert slow["status"] == "failed" and slow["error"].startswith("timed out"), slow.get("error")
    assert "5 min" in slow["error"] and "_resources.yaml" in slow["error"]
    assert [claim["verdict"] for claim in slow["claims"]] == ["not tested"]


@pytest.mark.slurm
def test_a_preempted_job_is_requeued_and_its_paper_finishes(cluster, tmp_path):
    workbook = _workbook(tmp_path)
    hold = workbook / "notebooks" / "hold"
    hold.touch()
    batch, outcome = _batch_in_background(workbook, ["slow"])
    job_id = _wait_until_running(workbook, "slow")
    # submitit's own test of preemption: SIGTERM, then the USR2 that arrives long before the time limit
    subprocess.run(["scancel", "--signal=TERM", job_id], check=True)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    deadline = time.time() + 60
    states = []
    while time.time() < deadline:
        # while Slurm requeues the job it may drop out of squeue for a moment, and the first attempt's record
        # (failed: its kernel got the SIGTERM too) then makes it look finished: poll until it is queued again
        states.append(slurm.jobs_in_flight(workbook, "offline").get("slow", {}).get("state"))
        if states[-1] == "queued":
            break
        time.sleep(0.3)
    assert states[-1] == "queued", (states, slurm.queue_states())  # requeued, not failed
    hold.unlink()
    # Slurm holds a requeued job back for two minutes; let it start now
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)
    batch.join(timeout=120)
    assert not batch.is_alive()
    slow = outcome["papers"]["slow"]
    assert slow["status"] == "ok" and slow["job"]["id"] == job_id, slow.get("error")
    assert "Restarts=1" in subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout


def _wait_until_running(workbook: Path, slug: str, timeout_s: float = 60) -> str:
    """The paper's Slurm job id, once its notebook's kernel runs (papermill has executed its first cell)."""
    executed = workbook / "reports/offline/notebooks" / f"{slug}.ipynb"
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        job = slurm.jobs_in_flight(workbook, "offline").get(slug)
        if job and job["state"] == "running" and executed.exists() and '"execution_count": 1' in executed.read_text():
            return job["id"]
        time.sleep(0.3)
    raise AssertionError(f"{slug}'s job did not start within {timeout_s} s: {slurm.queue_states()}")


def test_without_slurm_commands_the_executor_says_what_is_missing_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    missing = "needs Slurm's sbatch.*missing: sbatch, squeue, scontrol, srun.*slurm-up"
    with pytest.raises(BatchInputError, match=missing):
        make_executor("slurm").check(tmp_path, "offline", {})


def test_visible_devices_hide_gpus_from_cpu_jobs_and_keep_the_ones_slurm_granted():
    assert slurm.visible_devices(0, {"CUDA_VISIBLE_DEVICES": "0,1"}) == ""
    assert slurm.visible_devices(1, {"CUDA_VISIBLE_DEVICES": "3"}) == "3"
    assert slurm.visible_devices(2, {"SLURM_JOB_GPUS": "2,3"}) == "2,3"
    with pytest.raises(RuntimeError, match="asked for 1 GPU"):
        slurm.visible_devices(1, {})
    assert JobResources().gpus == 0


@pytest.mark.parametrize("scontrol_state, expected", [("REQUEUED", "queued"), ("PENDING", "queued"),
                                                      ("RUNNING", "running"), ("COMPLETED", None),
                                                      ("in an unknown state", None)])
def test_a_job_out_of_squeue_with_a_record_is_in_flight_while_scontrol_says_it_comes_back(
        tmp_path, monkeypatch, scontrol_state, expected):
    # a preempted job drops out of squeue for a moment while Slurm requeues it, after its first attempt wrote a
    # record: only scontrol tells that from a finished job (no cluster needed: squeue and scontrol are stood in for)
    job = {"id": "41", "log": "slurm/41.out", "submitted_at": time.time() - 60}
    (tmp_path / "reports/offline/slurm").mkdir(parents=True)
    (tmp_path / "reports/offline/slurm/jobs.json").write_text(json.dumps({"slow": job}))
    (tmp_path / "reports/offline/records").mkdir(parents=True)
    (tmp_path / "reports/offline/records/slow.json").write_text(json.dumps({"status": "failed", "job": {"id": "41"}}))
    monkeypatch.setattr(slurm, "queue_states", lambda: {})
    monkeypatch.setattr(slurm, "final_state", lambda job_id: {"state": scontrol_state, "reason": "", "runtime_s": 0.0})
    assert slurm.jobs_in_flight(tmp_path, "offline").get("slow", {}).get("state") == expected
