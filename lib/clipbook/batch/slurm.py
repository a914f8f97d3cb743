"""The Slurm executor: one job per paper, submitted through submitit as one job array per set of resources.

Jobs run from this checkout and this Python environment (submitit runs `sys.executable`, and sbatch exports
the environment, PYTHONPATH and CLIPBOOK_CACHE included), so the checkout and the cache must sit on a filesystem
the compute nodes share. Every job writes its paper's record itself as soon as its notebook finishes, so
nothing is lost if this process dies; this process waits for all of them, writes the record of a job that
ended without one (cancelled, preempted without requeue, killed, out of memory) with Slurm's reason, and
the report at the end.

reports/<profile>/slurm/ holds submitit's files: `<job id>_0_log.out` (a job's output, linked from its
paper's page), its pickles, and `jobs.json`, the papers in flight ({slug: {id, log, submitted_at}}) that
`invoke status` follows with squeue.
"""
from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import submitit

import clipbook
from clipbook.batch.profiles import BatchInputError, JobResources, load_resources
from clipbook.batch.runner import complete_record, input_hash, report_dir, run_one, store_record, write_json
from clipbook.cache import file_lock

SLURM_COMMANDS = ("sbatch", "squeue", "scontrol", "srun")
# squeue states of a job that will still run, or runs: anything else has left the queue for good
QUEUED_STATES = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESIZING", "SUSPENDED"}
RUNNING_STATES = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "STOPPED"}
RESULT_POLL_S = 1.0


def slurm_dir(root: Path, profile: str) -> Path:
    return report_dir(root, profile) / "slurm"


@dataclass(frozen=True)
class SlurmExecutor:
    """One Slurm job per paper. `partition` and `account` default to sbatch's own environment variables
    (SBATCH_PARTITION, SBATCH_ACCOUNT), then to the cluster's defaults. `poll_s`: how often squeue is asked,
    for jobs that end without a result (results themselves are files, looked for every second)."""
    partition: str | None = None
    account: str | None = None
    poll_s: float = 10.0

    def check(self, root: Path, profile: str, todo: dict[str, dict]) -> None:
        missing = [command for command in SLURM_COMMANDS if shutil.which(command) is None]
        if missing:
            raise BatchInputError(
                f"the slurm executor needs Slurm's {', '.join(SLURM_COMMANDS)} on PATH; missing: {', '.join(missing)}. "
                "Run it on a cluster's login node (e.g. after `module load slurm`), or start a single-node "
                "Slurm on this machine with `sudo .ci/slurm-up`")
        queue_states()  # raises when the controller does not answer
        load_resources(root, profile, list(todo))  # a bad _resources.yaml fails before the shared artifacts
        running = {slug: job for slug, job in jobs_in_flight(root, profile).items()
                   if slug in todo and job["state"] in ("queued", "running")}
        if running:
            raise BatchInputError("already in flight: " + ", ".join(f"{slug} (Slurm job {job['id']}, {job['state']})"
                                                                    for slug, job in running.items())
                                  + "; wait for them (`invoke status`) or scancel them")

    def run(self, root: Path, profile: str, todo: dict[str, dict], finished: Callable[[str, dict], None],
            log: Callable[[str], None]) -> None:
        if not todo:
            return
        submitted = self._submit(root, profile, todo, log)
        try:
            self._wait(root, profile, todo, submitted, finished)
        except KeyboardInterrupt:
            ids = sorted({job.job_id.split("_")[0] for job in submitted.values()})
            log(f"interrupted: the Slurm jobs keep running and write their records; `invoke status` follows them, "
                f"`invoke reports` writes the report once they are done, `scancel {' '.join(ids)}` stops them")
            raise

    def _submit(self, root: Path, profile: str, todo: dict[str, dict], log) -> dict[str, submitit.SlurmJob]:
        """One array per distinct set of resources (one array in all when the profile sets no per-paper ones)."""
        folder = slurm_dir(root, profile)
        resources = load_resources(root, profile, list(todo))
        library = str(Path(clipbook.__file__).parent)
        jobs: dict[str, submitit.SlurmJob] = {}
        for wanted in dict.fromkeys(resources.values()):
            slugs = [slug for slug in todo if resources[slug] == wanted]
            # max_num_timeout=0: a timed-out notebook would time out again from its first cell, so it is
            # reported failed instead; a preempted one is requeued (PaperJob is checkpointable)
            executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=0)
            executor.update_parameters(
                job_name=f"clipbook-{profile}", time=wanted.time_min, cpus_per_task=wanted.cpus,
                mem=f"{wanted.mem_gb}G", gpus_per_node=wanted.gpus or None, partition=self.partition,
                account=self.account, stderr_to_stdout=True, additional_parameters={"requeue": True})
            array = executor.map_array(PaperJob(), [str(root)] * len(slugs), slugs, [todo[s] for s in slugs],
                                       [profile] * len(slugs), [wanted] * len(slugs), [library] * len(slugs))
            jobs.update(zip(slugs, array))
        now = time.time()
        submitted = {slug: {"id": job.job_id, "log": _relative_log(root, profile, job.paths.stdout),
                            "submitted_at": now} for slug, job in jobs.items()}
        _update_in_flight(root, profile, lambda in_flight: in_flight.update(submitted))
        for slug, info in submitted.items():
            log(f"[submitted] {slug}: Slurm job {info['id']}, log {info['log']}")
        return jobs

    def _wait(self, root: Path, profile: str, todo: dict[str, dict], jobs: dict[str, submitit.SlurmJob],
              finished: Callable[[str, dict], None]) -> None:
        """Until every job has a record: its own (from submitit's result file, looked for every second), or, for
        a job that left the queue without one (squeue, read every `poll_s`), a failed one with Slurm's reason."""
        in_flight = _read_json(slurm_dir(root, profile) / "jobs.json")
        pending = dict(jobs)
        missing_once: set[str] = set()
        next_queue_read = 0.0
        while pending:
            # the queue is read before the result files: a job writes its result, then leaves the queue
            queue = queue_states() if time.time() >= next_queue_read else None
            if queue is not None:
                next_queue_read = time.time() + self.poll_s
            for slug, job in list(pending.items()):
                if job.paths.result_pickle.exists():
                    record = _job_outcome(root, profile, slug, todo[slug], job, in_flight[slug])
                elif queue is None:
                    continue
                elif job.job_id in queue:
                    missing_once.discard(slug)
                    continue
                elif slug not in missing_once:  # a shared filesystem may show the result file late: look twice
                    missing_once.add(slug)
                    next_queue_read = 0.0
                    continue
                else:
                    record = _ended_without_result(root, profile, slug, todo[slug], job.job_id, in_flight[slug])
                del pending[slug]
                finished(slug, record)
                _update_in_flight(root, profile, lambda in_flight: in_flight.pop(slug, None))
            if pending:
                time.sleep(RESULT_POLL_S)


class PaperJob(submitit.helpers.Checkpointable):
    """One paper's notebook inside its Slurm job. Checkpointable so that submitit requeues it when it is
    preempted; the notebook then starts again from its first cell (a kernel's state cannot be saved)."""

    def __call__(self, root: str, slug: str, parameters: dict, profile: str, resources: JobResources,
                 library: str) -> dict:
        environment = submitit.JobEnvironment()
        job = {"executor": "slurm", "id": environment.job_id, "node": environment.hostname,
               "log": _relative_log(Path(root), profile, environment.paths.stdout)}
        stopped = _watch_signals()
        started = time.time()
        here = str(Path(clipbook.__file__).parent)
        failure = None
        try:
            if here != library:
                raise RuntimeError(f"the job imported clipbook from {here}, the batch from {library}: jobs must run "
                                   "from the same checkout and Python environment as `invoke batch`")
            # before the kernel starts: it inherits this environment, and CUDA reads the variable once
            job["cuda_visible_devices"] = visible_devices(resources.gpus, os.environ)
            os.environ["CUDA_VISIBLE_DEVICES"] = job["cuda_visible_devices"]
            record = run_one(root, slug, parameters, profile, job=job)
        except RuntimeError as err:
            failure = str(err)
        except TimeLimitReached:
            failure = (f"timed out: the notebook did not finish within the job's {resources.time_min} min "
                       f"(time_min in notebooks/profiles/{profile}/_resources.yaml)")
        if failure:
            record = {"status": "failed", "error": failure, "runtime_s": round(time.time() - started, 1),
                      "parameters": parameters,
                      "input_hash": input_hash(Path(root) / "notebooks" / f"{slug}.ipynb", parameters)}
            record = complete_record(Path(root), slug, profile, record, job=job, since=started)
        if stopped and record["status"] == "failed":
            record["error"] = f"stopped by Slurm (SIGTERM) before the notebook finished ({record['error']})"
        store_record(Path(root), profile, slug, record)
        if stopped and record["status"] == "failed":
            # Slurm is ending this job (scancel, preemption, shutdown): leave no result file, so that the batch
            # reads the job's final state from Slurm and keeps waiting if Slurm requeues it
            raise SystemExit(143)
        return record


class TimeLimitReached(BaseException):
    """Slurm's signal before the time limit arrived and submitit did not requeue. A BaseException, so that no
    `except Exception` on the way (papermill's, the runner's retry of failed kernel starts) takes it for an
    error of the notebook's."""


def _watch_signals() -> list[float]:
    """Wrap submitit's handlers: note SIGTERM (which submitit ignores, waiting for its own signal) in the list
    returned, and turn submitit's refusal to requeue a timed-out job into TimeLimitReached. A preempted job is
    still requeued by submitit (which then exits)."""
    received: list[float] = []
    on_term = signal.getsignal(signal.SIGTERM)
    time_limit_signal = getattr(signal, f"SIG{submitit.JobEnvironment.USR_SIG}")
    on_time_limit = signal.getsignal(time_limit_signal)

    def note_sigterm(signum, frame):
        received.append(time.time())
        if callable(on_term):
            on_term(signum, frame)

    def reach_time_limit(signum, frame):
        try:
            if callable(on_time_limit):
                on_time_limit(signum, frame)
        except submitit.core.utils.UncompletedJobError:
            signal.signal(signum, signal.SIG_IGN)  # a second signal must not interrupt writing the record
            raise TimeLimitReached() from None

    signal.signal(signal.SIGTERM, note_sigterm)
    signal.signal(time_limit_signal, reach_time_limit)
    return received


def visible_devices(gpus: int, environ) -> str:
    """CUDA_VISIBLE_DEVICES for a job's kernel: none for a CPU job (so that it never takes a GPU of a shared
    node), else the GPUs Slurm granted (Slurm sets CUDA_VISIBLE_DEVICES with GRES; SLURM_JOB_GPUS otherwise).

    Raises:
        RuntimeError: GPUs were requested and Slurm granted none.
    """
    if gpus == 0:
        return ""
    granted = environ.get("CUDA_VISIBLE_DEVICES") or environ.get("SLURM_STEP_GPUS") or environ.get("SLURM_JOB_GPUS")
    if not granted:
        raise RuntimeError(f"the job asked for {gpus} GPU(s) but Slurm granted none (CUDA_VISIBLE_DEVICES and "
                           "SLURM_JOB_GPUS are unset): is the partition's GRES configured for GPUs?")
    return granted


def _job_outcome(root: Path, profile: str, slug: str, parameters: dict, job: submitit.SlurmJob,
                 info: dict) -> dict:
    """The record a job returned, or a failed record when the job's own code raised (outside the notebook)."""
    outcome, value = submitit.core.utils.pickle_load(job.paths.result_pickle)
    if outcome == "success":
        return value
    last_line = ([line for line in str(value).splitlines() if line.strip()] or ["no traceback"])[-1]
    record = {"status": "failed", "error": f"the Slurm job failed outside the notebook: {last_line}",
              "input_hash": input_hash(root / "notebooks" / f"{slug}.ipynb", parameters), "parameters": parameters,
              "runtime_s": 0.0}
    return complete_record(root, slug, profile, record, job=_job_info(info), since=info["submitted_at"])


def _ended_without_result(root: Path, profile: str, slug: str, parameters: dict, job_id: str, info: dict) -> dict:
    """The record of a job that left the queue without a result: the one it stored before Slurm stopped it,
    or a failed one; either way with Slurm's final state as the reason."""
    state = final_state(job_id)
    stored = _read_json(report_dir(root, profile) / "records" / f"{slug}.json")
    if stored.get("job", {}).get("id") == job_id:
        if stored["status"] != "ok":
            stored["error"] = f"Slurm job {job_id} ended {state['state']}: {stored.get('error', '')}"
        return stored
    record = {"status": "failed", "input_hash": input_hash(root / "notebooks" / f"{slug}.ipynb", parameters),
              "parameters": parameters, "runtime_s": state["runtime_s"],
              "error": f"Slurm job {job_id} ended {state['state']} before the notebook finished"
                       + (f" (reason: {state['reason']})" if state["reason"] not in ("", "None") else "")}
    return complete_record(root, slug, profile, record, job=_job_info(info), since=info["submitted_at"])


def _job_info(info: dict) -> dict:
    return {"executor": "slurm", "id": info["id"], "log": info["log"]}


def queue_states() -> dict[str, str]:
    """{job id: squeue state} of this user's jobs, array elements listed one by one ("12_3").

    Raises:
        BatchInputError: squeue failed (no controller, no munge).
    """
    try:
        result = subprocess.run(["squeue", "--noheader", "--array", f"--user={getpass.getuser()}", "--format=%i|%T"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BatchInputError(f"Slurm does not answer: squeue: {err}") from None
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise BatchInputError(f"Slurm does not answer: squeue said {said!r}")
    return dict(line.split("|", 1) for line in result.stdout.split() if "|" in line)


def final_state(job_id: str) -> dict:
    """{state, reason, runtime_s} of a job that left the queue, from `scontrol show job` (Slurm keeps finished
    jobs for MinJobAge, 300 s by default; accounting may be off, so sacct is not asked)."""
    result = subprocess.run(["scontrol", "show", "job", "--oneliner", job_id], capture_output=True, text=True)
    fields = dict(item.split("=", 1) for item in result.stdout.split() if "=" in item)
    return {"state": fields.get("JobState", "in an unknown state"), "reason": fields.get("Reason", ""),
            "runtime_s": float(_seconds(fields.get("RunTime", "0")))}


def jobs_in_flight(root: Path, profile: str) -> dict[str, dict]:
    """Papers whose Slurm job is in the queue, or left it without a record: {slug: {id, log, state}}, state
    being queued, running (requeued jobs included, whatever their earlier attempt recorded), or lost (the
    next batch reruns the paper). Empty without a word to Slurm when no batch has jobs out."""
    in_flight = _read_json(slurm_dir(root, profile) / "jobs.json")
    if not in_flight:
        return {}
    try:
        queue = queue_states()
    except BatchInputError:
        queue = None
    records_dir = report_dir(root, profile) / "records"
    found = {}
    for slug, job in in_flight.items():
        if queue is not None and job["id"] in queue:
            found[slug] = {**job, "state": _status_of(queue[job["id"]])}
        elif not _recorded_since(records_dir / f"{slug}.json", job):
            found[slug] = {**job, "state": "lost" if queue is not None else "unknown (squeue does not answer)"}
        elif queue is not None and (state := final_state(job["id"])["state"]) in QUEUED_STATES | RUNNING_STATES:
            # out of squeue for a moment while Slurm requeues it (a preemption), with its first attempt's record
            # written: scontrol still knows it is coming back
            found[slug] = {**job, "state": _status_of(state)}
    return found


def _update_in_flight(root: Path, profile: str, change: Callable[[dict], object]) -> None:
    """Read, change and write jobs.json under a lock (two batches may run different papers of one profile)."""
    path = slurm_dir(root, profile) / "jobs.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path, timeout=60):
        in_flight = _read_json(path)
        change(in_flight)
        write_json(path, in_flight)


def _recorded_since(path: Path, job: dict) -> bool:
    """Whether the paper has a record from this job, or one written after it was submitted (a later batch's)."""
    try:
        written = path.stat().st_mtime
    except OSError:
        return False
    return written >= job["submitted_at"] or _read_json(path).get("job", {}).get("id") == job["id"]


def _status_of(squeue_state: str) -> str:
    if squeue_state in QUEUED_STATES:
        return "queued"
    return "running" if squeue_state in RUNNING_STATES else squeue_state.lower()


def _relative_log(root: Path, profile: str, path: Path) -> str:
    return os.path.relpath(path, report_dir(root, profile))


def _seconds(duration: str) -> int:
    """Slurm's [days-]hours:minutes:seconds as seconds (0 for what is not one)."""
    days, _, clock = duration.rpartition("-")
    try:
        total = 0
        for part in clock.split(":"):
            total = total * 60 + int(part)
        return total + 86400 * int(days or 0)
    except ValueError:
        return 0


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
