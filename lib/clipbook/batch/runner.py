"""The papermill batch: run notebooks under a profile, resumably, through an executor (`executors.EXECUTORS`:
local processes, or Slurm jobs).

Layout of reports/<profile>/:
    notebooks/<slug>.ipynb   the executed notebook
    <slug>.html              its page (errors included when it failed)
    records/<slug>.json      the outcome, written atomically as soon as the paper finishes
    results.json             all records plus provenance, rewritten after every paper
    index.html               the summary page
    slurm/                   Slurm executor only: job scripts, logs and the jobs in flight (jobs.json)

A paper whose record says "ok" for the same notebook source, parameters and library code is skipped
on the next run (resume) unless `force` is given; a failure in one notebook never stops the others.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

from clipbook.batch import contract
from clipbook.batch.parameters import PROFILE_BASES
from clipbook.batch.profiles import papers_without_path, plan
from clipbook.cache import atomic_write_bytes
from clipbook.report.record import SCHEMA_VERSION
from clipbook.session import OFFLINE_ENV, REHEARSAL_PROFILES

KERNEL_START_RETRIES = 2


def report_dir(root: Path, profile: str) -> Path:
    return root / "reports" / profile


def kernel_environment(profile: str, threads: int | None = None) -> dict[str, str]:
    """Environment the kernels start with. HF_HUB_OFFLINE is read once when huggingface_hub is
    imported, so it must be set here, before the kernel starts, not in a notebook cell. `threads`: the torch
    threads of each kernel (`CLIPBOOK_THREADS`) when notebooks share the cores (`rehearsal_threads`)."""
    env = {"CLIPBOOK_PROFILE": profile, "CLIPBOOK_PROGRESS": "0", "PYTHONHASHSEED": "0",
           "TQDM_DISABLE": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    if profile == "offline" or profile in REHEARSAL_PROFILES:
        env.update(OFFLINE_ENV)
    if threads is not None:
        env["CLIPBOOK_THREADS"] = str(threads)
    return env


def rehearsal_threads(profile: str, workers: int) -> int | None:
    """Torch threads per kernel when `workers` notebooks run side by side: the cores split between them, so
    their single-threaded stretches (kernel start, imports, data generation, Python loops) overlap instead of
    two kernels each oversubscribing every core. Only for the rehearsal, whose outputs are never stored: the
    offline profile keeps DEFAULT_THREADS, since a float reduction's threading can move the last bits of an
    encoded feature, and its stored outputs and caches were made that way. None: leave the default
    (one worker, another profile, or CLIPBOOK_THREADS set by the user)."""
    if profile not in REHEARSAL_PROFILES or workers < 2 or "CLIPBOOK_THREADS" in os.environ:
        return None
    return max(1, (os.cpu_count() or 1) // workers)


def input_hash(notebook: Path, parameters: dict) -> str:
    """What a finished paper's result depends on: its notebook, its parameters and the source of the library
    modules it imports (a fixed bug in clipbook must rerun the papers that use that code, not the others)."""
    digest = hashlib.sha256(notebook.read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True).encode())
    digest.update(contract.library_hash(notebook).encode())
    return digest.hexdigest()[:20]


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes((json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), path)


def run_one(root: str, slug: str, parameters: dict, profile: str, job: dict | None = None,
            threads: int | None = None) -> dict:
    """Execute one notebook (in a worker process or a cluster job) and return its record. Never raises.
    `job` describes the cluster job it runs in (id, log), kept in the record and linked from the page;
    `threads`: its kernel's torch threads (`rehearsal_threads`), None for the default."""
    import papermill

    root_path = Path(root)
    source = root_path / "notebooks" / f"{slug}.ipynb"
    executed = report_dir(root_path, profile) / "notebooks" / f"{slug}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    os.environ.update(kernel_environment(profile, threads))
    started = time.time()
    record: dict = {"status": "failed", "input_hash": input_hash(source, parameters), "parameters": parameters}
    for attempt in range(KERNEL_START_RETRIES + 1):
        try:
            papermill.execute_notebook(str(source), str(executed), parameters=parameters, kernel_name="python3",
                                       cwd=str(source.parent), progress_bar=False, log_output=False)
            record["status"] = "ok"
            break
        except papermill.PapermillExecutionError as err:
            record["error"] = f"{err.ename}: {err.evalue}"
            break
        except Exception as err:  # kernel start races (papermill #239, #511) are worth a retry
            record["error"] = f"{type(err).__name__}: {err}"
            if attempt == KERNEL_START_RETRIES or executed.exists() and _started_cells(executed):
                break
            time.sleep(2 + 3 * attempt)
    record["runtime_s"] = round(time.time() - started, 1)
    return complete_record(root_path, slug, profile, record, job=job)


def complete_record(root: Path, slug: str, profile: str, record: dict, *, job: dict | None = None,
                    since: float = 0.0) -> dict:
    """Finish a run's record from its executed notebook (the notebook's own record, or the failure's claims
    as not tested) and render the paper's page. `since`: ignore an executed notebook older than this
    (a cluster job that died before papermill started leaves the previous run's notebook behind)."""
    import nbformat

    from clipbook.report.html import notebook_to_html
    from clipbook.report.record import read_record

    out_dir = report_dir(root, profile)
    source = root / "notebooks" / f"{slug}.ipynb"
    executed = out_dir / "notebooks" / f"{slug}.ipynb"
    if job:
        record["job"] = job
    if executed.exists() and executed.stat().st_mtime >= since:
        notebook = nbformat.read(executed, as_version=4)
        found = read_record(notebook)
        if found:
            record.update(found)
        elif record["status"] == "ok":
            record.update(status="failed", error="the notebook finished without calling clipbook.record(...)")
        if record["status"] == "failed" and not found:
            error = record.get("error", "the notebook failed")
            record["claims"] = _untested_claims(source, record["parameters"], error)
        try:
            notebook_to_html(executed, out_dir / f"{slug}.html", record={"profile": profile, **record})
            record["html"] = f"{slug}.html"
        except Exception as err:  # a broken page must not lose the run's numbers
            record["html_error"] = f"{type(err).__name__}: {err}"
    else:
        record.setdefault("error", "papermill wrote no output notebook")
    return record


def store_record(root: Path, profile: str, slug: str, record: dict) -> None:
    """Write a finished paper's record atomically, and the files a workbook page produces (calibration.json)."""
    out_dir = report_dir(root, profile)
    write_json(out_dir / "records" / f"{slug}.json", record)
    for name, data in (record.get("artifacts") or {}).items():
        write_json(out_dir / Path(name).name, data)


def _untested_claims(notebook: Path, parameters: dict, error: str) -> list[dict]:
    """A failed run's claims, each *not tested* with the error as the reason, so the report still lists them."""
    try:
        claims = contract.definitions(notebook, parameters)["CLAIMS"]
    except Exception:  # a notebook broken enough to fail here has its error on its page already
        return []
    return [{"id": c.id, "statement": c.statement, "verdict": "not tested", "effect": None, "interval": None,
             "margin": c.margin, "paper_effect": c.paper_effect, "reason": f"the notebook failed: {error}",
             "sentence": f"Not tested: the notebook failed ({error})."} for c in claims]


def _started_cells(executed: Path) -> bool:
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    return any(cell.get("execution_count") for cell in notebook.cells if cell.cell_type == "code")


def load_records(root: Path, profile: str) -> dict[str, dict]:
    records = {}
    for path in sorted((report_dir(root, profile) / "records").glob("*.json")):
        try:
            records[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue  # a record is rewritten whole; an unreadable one means "run it again"
    return records


def write_results(root: Path, profile: str) -> dict:
    """results.json (schema v2, documented in reports/README.md) from the paper records, then every profile's
    index.html (each index shows all profiles that have run)."""
    records = load_records(root, profile)
    titles = paper_titles(root)
    papers = {slug: {"title": titles.get(slug, ""), **{k: v for k, v in rec.items() if k != "input_hash"}}
              for slug, rec in records.items()}
    results = {"schema": SCHEMA_VERSION, "profile": profile, "papers": papers}
    write_json(report_dir(root, profile) / "results.json", results)
    write_indexes(root)
    return results


def write_indexes(root: Path) -> list[Path]:
    """index.html in every profile folder with a results.json: the dashboard over all of them, opened on its own."""
    from clipbook.report.dashboard import render_index

    reports = {}
    for path in sorted((root / "reports").glob("*/results.json")):
        try:
            reports[path.parent.name] = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue  # rewritten whole after every paper; an unreadable one is left out until then
    written = []
    for profile in reports:
        written.append(report_dir(root, profile) / "index.html")
        atomic_write_bytes(render_index(reports, current=profile).encode(), written[-1])
    return written


def render_reports(root: Path, profile: str) -> dict:
    """Render every executed notebook's page again, with the header band from its record, then results.json
    and the indexes (what `invoke reports` does; no notebook runs)."""
    from clipbook.report.html import notebook_to_html

    out_dir = report_dir(root, profile)
    records = load_records(root, profile)
    for executed in sorted((out_dir / "notebooks").glob("*.ipynb")):
        record = records.get(executed.stem, {})
        notebook_to_html(executed, out_dir / f"{executed.stem}.html", record={"profile": profile, **record})
    return write_results(root, profile)


def paper_titles(root: Path) -> dict[str, str]:
    """Each notebook's first markdown heading."""
    import nbformat

    from clipbook.report.html import notebook_title

    return {path.stem: notebook_title(nbformat.read(path, as_version=4))
            for path in sorted((root / "notebooks").glob("*.ipynb"))}


def run_batch(root: Path, *, profile: str = "offline", papers: list[str] | None = None, workers: int | None = None,
              force: bool = False, extra: dict | None = None, log=print, executor="local") -> dict:
    """Validate everything, then run the selected notebooks; returns the results dict.

    Args:
        workers: the local executor's processes (default 1).
        executor: a name from `executors.EXECUTORS` ("local": processes on this machine; "slurm": one cluster
            job per paper) or an executor made with `executors.make_executor`.
    """
    # imported here: the executors import this module's per-paper functions
    from clipbook.batch.executors import make_executor

    root = Path(root).resolve()
    if isinstance(executor, str):
        executor = make_executor(executor, workers=workers)
    parameters = plan(root, profile, papers, extra)  # raises before any kernel starts
    if not papers and (pathless := papers_without_path(root, profile)):
        log(f"[plan] not run under {profile!r} (no {PROFILE_BASES[profile]!r} profile, so no paper path): "
            f"{', '.join(pathless)}")
    out_dir = report_dir(root, profile)
    done = load_records(root, profile)
    todo = {}
    for slug, params in parameters.items():
        previous = done.get(slug)
        source = root / "notebooks" / f"{slug}.ipynb"
        if (not force and previous and previous.get("status") == "ok"
                and previous.get("input_hash") == input_hash(source, params)):
            log(f"[skip] {slug}: finished earlier with the same notebook, parameters and library (use --force to rerun)")
            continue
        todo[slug] = params
    executor.check(root, profile, todo)  # e.g. Slurm reachable, resources valid: before anything heavy
    (out_dir / "records").mkdir(parents=True, exist_ok=True)
    if todo:
        prepare_shared_artifacts(profile, [root / "notebooks" / f"{slug}.ipynb" for slug in todo], log)

    def finished(slug: str, record: dict) -> None:
        store_record(root, profile, slug, record)
        write_results(root, profile)
        log(f"[{record['status']}] {slug} in {record.get('runtime_s', 0):.0f} s"
            + (f": {record['error']}" if record.get("error") else ""))

    executor.run(root, profile, todo, finished, log)
    return write_results(root, profile)


# What offline notebooks share, built once before the kernels start; a notebook names what it needs in its
# SPEC (`declare(..., needs=("tiny-clip", "tiny-ssl"))`).
SHARED_ARTIFACTS: dict[str, dict] = {
    "tiny-clip": {"module": "clipbook.models.tiny_clip", "build": "tiny_clip_checkpoint", "title": "tiny CLIP"},
    "tiny-clip-vit": {"module": "clipbook.models.tiny_clip", "build": "tiny_clip_vit_checkpoint",
                      "title": "tiny CLIP with a ViT tower"},
    "tiny-ssl": {"module": "clipbook.models.tiny_ssl", "build": "tiny_ssl_checkpoint",
                 "title": "tiny self-supervised encoder"},
    "tiny-supervised": {"module": "clipbook.models.tiny_supervised", "build": "tiny_supervised_checkpoint",
                        "title": "tiny supervised classifier"},
}


def shared_artifacts_needed(notebooks: list[Path]) -> list[str]:
    """The SHARED_ARTIFACTS that at least one of these notebooks declares it needs, in build order."""
    needed = {need for path in notebooks for need in contract.notebook_spec(path).needs}
    return [name for name in SHARED_ARTIFACTS if name in needed]


def prepare_shared_artifacts(profile: str, notebooks: list[Path], log) -> None:
    """Build what the selected offline notebooks share (the tiny CLIP; the tiny self-supervised encoder or the
    tiny supervised classifier if one of them needs it) once, in this process, with a visible progress bar,
    instead of inside the first kernel while the others wait on its lock."""
    if profile in REHEARSAL_PROFILES:  # written here once, rather than by the first kernel while the others wait
        from clipbook.data import fake_layouts

        log(f"[prepare] generated datasets in the real layouts under {fake_layouts.rehearsal_data_root()}")
        fake_layouts.ensure_layouts(fake_layouts.rehearsal_data_root())
        return
    if profile != "offline":
        return
    import importlib

    for name in shared_artifacts_needed(notebooks):
        spec = SHARED_ARTIFACTS[name]
        module = importlib.import_module(spec["module"])
        log(f"[prepare] {spec['title']} checkpoint {module.checkpoint_key()} (trained on first use, then cached)")
        getattr(module, spec["build"])(show_progress=sys.stderr.isatty())
