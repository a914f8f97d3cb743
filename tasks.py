"""Tasks of the workbook (`invoke --list`). They are conveniences: every notebook also runs with
plain papermill, e.g. `papermill notebooks/gda.ipynb out.ipynb -p seeds "[1]"`."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml
from invoke import task

ROOT = Path(__file__).resolve().parent
# Two stages: the unit tests (fast, fail early), then nbval re-executing every notebook and comparing its
# outputs. Each notebook's cells share a time budget (NOTEBOOK_BUDGET_S in conftest.py).
UNIT_TEST_COMMAND = "pytest tests -p no:randomly --durations=25"  # the slowest tests, for the time budgets
NOTEBOOK_TEST_COMMAND = ("pytest notebooks --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg "
                         "--nbval-cell-timeout=600 -p no:randomly")


def _papers(papers: str) -> list[str] | None:
    return [p.strip() for p in papers.split(",") if p.strip()] or None


def _extra(settings: list[str]) -> dict:
    """`--set seeds=[1] --set shots=[1,16]`: values parsed as YAML, like papermill's -y."""
    extra = {}
    for item in settings:
        if "=" not in item:
            sys.exit(f"--set expects NAME=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        extra[name.strip()] = yaml.safe_load(value)
    return extra


@task(iterable=["set_"], help={
    "papers": "comma-separated slugs (default: every notebook in notebooks/)",
    "profile": "offline (default: toy world, CPU), paper (real checkpoints and datasets, GPU) or rehearsal (the "
               "paper path with random weights and generated data in the real layouts)",
    "executor": "local (default: processes on this machine) or slurm (one cluster job per paper, through submitit)",
    "workers": "local executor: notebooks run in parallel, each in its own process and kernel (default 1)",
    "partition": "slurm executor: the partition (default: $SBATCH_PARTITION, else the cluster's default)",
    "account": "slurm executor: the account to charge (default: $SBATCH_ACCOUNT, else yours)",
    "force": "rerun papers that already finished with the same notebook and parameters",
    "set_": "override a notebook parameter for every selected paper, e.g. --set seeds=[1]",
})
def batch(c, papers="", profile="offline", executor="local", workers=None, partition=None, account=None, force=False,
          set_=None):
    """Run the notebooks under a profile (resumable) and write reports/<profile>/."""
    from clipbook.batch.executors import make_executor
    from clipbook.batch.profiles import BatchInputError
    from clipbook.batch.runner import run_batch

    try:
        chosen = make_executor(executor, workers=None if workers is None else int(workers), partition=partition,
                               account=account)
        results = run_batch(ROOT, profile=profile, papers=_papers(papers), force=force, extra=_extra(set_ or []),
                            executor=chosen)
    except (BatchInputError, ValueError) as err:
        sys.exit(f"error: {err}")
    failed = [slug for slug, rec in results["papers"].items() if rec.get("status") != "ok"]
    print(f"reports written to {ROOT / 'reports' / profile}/index.html")
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (see their pages in reports/{profile}/)")


@task(help={"profile": "which profile's reports to render again",
            "pdf": "also print the index and every page to reports/<profile>/pdf/ through headless Chromium"})
def reports(c, profile="offline", pdf=False):
    """Render the HTML pages and every profile's index again from the executed notebooks already in reports/."""
    from clipbook.batch.runner import render_reports, report_dir

    out = report_dir(ROOT, profile)
    if not (out / "records").is_dir():
        sys.exit(f"error: no run under the {profile!r} profile in {out}; run `invoke batch --profile {profile}` first")
    render_reports(ROOT, profile)
    print(f"{out}/index.html")
    if pdf:
        from clipbook.report.browser import BrowserUnavailable, print_pdfs

        try:
            written = print_pdfs(out)
        except BrowserUnavailable as err:
            sys.exit(f"error: cannot print PDFs: {err}")
        print(f"{len(written)} PDFs in {written[0].parent}/")


@task(help={"papers": "comma-separated slugs (default: all)"})
def status(c, papers="", profile="offline"):
    """List papers with their last status and each claim's verdict under a profile; papers whose Slurm job
    has not finished are shown queued or running, with the job's id."""
    from clipbook.batch.profiles import available_papers
    from clipbook.batch.runner import load_records
    from clipbook.batch.slurm import jobs_in_flight

    records = load_records(ROOT, profile)
    in_flight = jobs_in_flight(ROOT, profile)
    for slug in _papers(papers) or available_papers(ROOT):
        rec = records.get(slug)
        if slug in in_flight:
            job = in_flight[slug]
            print(f"{slug:<28} {job['state']:<7}          Slurm job {job['id']}, log reports/{profile}/{job['log']}")
            continue
        if rec is None:
            print(f"{slug:<28} never run")
            continue
        job = f"  Slurm job {rec['job']['id']}" if rec.get("job") else ""
        print(f"{slug:<28} {rec['status']:<7} {rec.get('runtime_s', 0):>6.0f} s{job}"
              + (f"  ({rec['error']})" if rec.get("error") else ""))
        for claim in rec.get("claims", []):
            effect = "" if claim.get("effect") is None else f" {claim['effect']:+.2f}"
            print(f"    {claim['verdict']:<14}{effect:>8}  {claim['statement']}")


@task(help={"stage": "unit (library tests), notebooks (nbval) or all (default: both, unit first)"})
def test(c, stage="all"):
    """Run the test suite: unit tests, then nbval over the committed notebooks."""
    stages = {"unit": [UNIT_TEST_COMMAND], "notebooks": [NOTEBOOK_TEST_COMMAND],
              "all": [UNIT_TEST_COMMAND, NOTEBOOK_TEST_COMMAND]}
    if stage not in stages:
        sys.exit(f"unknown stage {stage!r}; accepted: {', '.join(stages)}")
    for command in stages[stage]:
        c.run(command, pty=False)


@task(help={"slug": "the paper's slug (lowercase letters, digits and dashes)",
            "title": "the paper's title (default: the slug)"})
def new(c, slug, title=""):
    """Start a paper's notebook from notebooks/_template.py, with its paper-profile YAML."""
    from clipbook.batch.scaffold import new_paper

    try:
        written = new_paper(ROOT, slug, title=title or slug)
    except ValueError as err:
        sys.exit(f"error: {err}")
    for path in written:
        print(f"wrote {path.relative_to(ROOT)}")


@task(help={"papers": "comma-separated slugs (default: all)"})
def refresh(c, papers=""):
    """Re-execute notebooks in place (offline profile) to store new outputs after an intended change."""
    from clipbook.batch.profiles import available_papers
    from clipbook.batch.refresh import refresh_notebook

    for slug in _papers(papers) or available_papers(ROOT):
        print(f"refreshing notebooks/{slug}.ipynb")
        refresh_notebook(ROOT / "notebooks" / f"{slug}.ipynb")


@task
def sync(c):
    """Sync every notebook with its paired py:percent script (the newer one wins)."""
    c.run("jupytext --sync notebooks/*.ipynb")


@task(name="clean-cache")
def clean_cache(c, features_only=False):
    """Delete the on-disk cache (features; and the tiny CLIP checkpoint unless --features-only)."""
    from clipbook.cache import cache_root

    target = cache_root() / "features" if features_only else cache_root()
    shutil.rmtree(target, ignore_errors=True)
    print(f"removed {target}")


@task(name="list-papers")
def list_papers(c):
    """Print the papers with a notebook, as JSON."""
    from clipbook.batch.profiles import available_papers
    from clipbook.batch.runner import paper_titles

    print(json.dumps({slug: paper_titles(ROOT).get(slug, "") for slug in available_papers(ROOT)}, indent=2))
