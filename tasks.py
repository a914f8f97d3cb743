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
UNIT_TEST_COMMAND = "pytest tests -p no:randomly"
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
    "workers": "notebooks run in parallel, each in its own process and kernel",
    "force": "rerun papers that already finished with the same notebook and parameters",
    "set_": "override a notebook parameter for every selected paper, e.g. --set seeds=[1]",
})
def batch(c, papers="", profile="offline", workers=1, force=False, set_=None):
    """Run the notebooks under a profile (resumable) and write reports/<profile>/."""
    from clipbook.batch.profiles import BatchInputError
    from clipbook.batch.runner import run_batch

    try:
        results = run_batch(ROOT, profile=profile, papers=_papers(papers), workers=int(workers), force=force,
                            extra=_extra(set_ or []))
    except (BatchInputError, ValueError) as err:
        sys.exit(f"error: {err}")
    failed = [slug for slug, rec in results["papers"].items() if rec.get("status") != "ok"]
    print(f"reports written to {ROOT / 'reports' / profile}/index.html")
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (see their pages in reports/{profile}/)")


@task(help={"profile": "which profile's reports to render again"})
def reports(c, profile="offline"):
    """Render the HTML pages and index again from the executed notebooks already in reports/."""
    from clipbook.batch.runner import report_dir, write_results
    from clipbook.report.html import notebook_to_html

    out = report_dir(ROOT, profile)
    for executed in sorted((out / "notebooks").glob("*.ipynb")):
        notebook_to_html(executed, out / f"{executed.stem}.html")
    write_results(ROOT, profile)
    print(f"{out}/index.html")


@task(help={"papers": "comma-separated slugs (default: all)"})
def status(c, papers="", profile="offline"):
    """List papers with their last status and each claim's verdict under a profile."""
    from clipbook.batch.profiles import available_papers
    from clipbook.batch.runner import load_records

    records = load_records(ROOT, profile)
    for slug in _papers(papers) or available_papers(ROOT):
        rec = records.get(slug)
        if rec is None:
            print(f"{slug:<28} never run")
            continue
        print(f"{slug:<28} {rec['status']:<7} {rec.get('runtime_s', 0):>6.0f} s"
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
