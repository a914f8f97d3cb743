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
TEST_COMMAND = ("pytest tests notebooks --nbval --nbval-current-env "
                "--nbval-sanitize-with tests/nbval_sanitize.cfg -p no:randomly")


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
    "profile": "offline (default: toy world, CPU) or paper (real checkpoints and datasets, GPU)",
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
    """List papers with their last status under a profile."""
    from clipbook.batch.profiles import available_papers
    from clipbook.batch.runner import load_records

    records = load_records(ROOT, profile)
    for slug in _papers(papers) or available_papers(ROOT):
        rec = records.get(slug)
        if rec is None:
            print(f"{slug:<28} never run")
            continue
        verdict = {True: "claim holds", False: "claim does not hold", None: "claim not tested"}[rec.get("claim_holds")]
        print(f"{slug:<28} {rec['status']:<7} {rec.get('runtime_s', 0):>6.0f} s  {verdict}"
              + (f"  ({rec['error']})" if rec.get("error") else ""))


@task
def test(c):
    """Run the test suite: unit tests and nbval over the committed notebooks."""
    c.run(TEST_COMMAND, pty=False)


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
