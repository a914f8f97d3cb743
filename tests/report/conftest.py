"""A small report with two profiles, built the way `invoke reports` builds one, from fixture records and tiny fake
executed notebooks (no kernel runs): gda (ok, with an equation, a figure and claims), coop (failed) and the
calibration workbook page, under the offline and the paper profile."""
import base64
import io
import json
from pathlib import Path

import nbformat
import pytest

from clipbook.claims import Claim, at_least
from clipbook.report.record import RECORD_MIME, _html, make_record

EQUATION = r"$$w_c = P\mu_c,\qquad b_c = \log\tfrac1K - \tfrac12\,\mu_c^\top P\,\mu_c$$"
PROVENANCE = {"git": {"commit": "0123456789abcdef", "dirty": False}, "library_hash": "feedc0ffee",
              "models": [{"name": "clipbook-tiny-rn", "weights": "toyworld:clipbook-tiny-rn-1234"}],
              "datasets": {"toy/test": {"size": 100, "world_version": "3"}, "toy/train": {"size": 50}},
              "device": "cpu (x86_64, 2 threads)", "seeds": [1, 2, 3], "packages": {"torch": "2.14.1"},
              "finished_at": "2026-01-01T00:00:00Z"}


def _gda_rows(model: str, dataset: str) -> list[dict]:
    rows = [{"model": model, "dataset": dataset, "method": "zero-shot CLIP", "metric": "accuracy", "value": 60.0}]
    for seed in (1, 2, 3):
        for shots, gain in ((1, 2.0), (16, 12.0)):
            rows.append({"model": model, "dataset": dataset, "method": "GDA", "metric": "accuracy", "shots": shots,
                         "seed": seed, "value": 60.0 + gain + seed * 0.5})
            rows.append({"model": model, "dataset": dataset, "method": "linear probe", "metric": "accuracy",
                         "shots": shots, "seed": seed, "value": 60.0 + gain + (0.8 if seed == 2 else -0.3)})
    return rows


GDA_CLAIMS = [Claim("beats-zero-shot", "GDA beats zero-shot CLIP at every shot count", "GDA", "zero-shot CLIP",
                    per=("shots",), paper_effect=17.28, paper_effect_source="exp.log"),
              Claim("beats-linear-probe", "GDA beats a linear probe at every shot count", "GDA", "linear probe",
                    per=("shots",)),
              Claim("gated", "GDA beats zero-shot CLIP once the features carry class information", "GDA",
                    "zero-shot CLIP", requires=("features-informative",))]


def gda_record(profile: str) -> dict:
    model, dataset = ("clipbook-tiny-rn", "toy") if profile == "offline" else ("RN50-quickgelu", "eurosat")
    rows = _gda_rows(model, dataset)
    reported = [{"model": model, "dataset": dataset, "method": "GDA", "metric": "accuracy", "shots": shots,
                 "value": value, "source": "exp.log"} for shots, value in ((1, 62.5), (16, 74.0))]
    made = make_record(rows=rows, claims=GDA_CLAIMS, reported=reported if profile == "paper" else None,
                       profile=profile, preconditions=[at_least("features-informative", "k-NN accuracy", 12.0, 50.0)])
    return {**made, "status": "ok", "runtime_s": 12.5, "html": "gda.html", "provenance": PROVENANCE}


def calibration_record(profile: str) -> dict:
    rows = [{"model": "clipbook-tiny-rn", "dataset": "toy", "method": "zero-shot CLIP", "metric": "accuracy",
             "value": 55.0}]
    rows += [{"model": "clipbook-tiny-rn", "dataset": "toy", "method": "linear probe", "metric": "accuracy",
              "shots": shots, "seed": seed, "value": 30.0 + 4 * shots ** 0.5 + seed}
             for shots in (1, 2, 4, 8, 16) for seed in (1, 2, 3)]
    calibration = {"datasets": {"toy": {"counterpart": "caltech101", "zero_shot": 55.0,
                                        "linear_probe": {"1": 35.0, "16": 47.0},
                                        "reference": {"zero_shot": 86.3, "linear_probe": {"1": 60.0, "16": 90.0}}}},
                   "targets": [{"target": "toy zero-shot within ±12 of RN50", "value": -31.3, "passed": False},
                               {"target": "16-shot probe above 1-shot", "value": 12.0, "passed": True}]}
    made = make_record(rows=rows, claims=[], kind="workbook", profile=profile,
                       artifacts={"calibration.json": calibration},
                       summary="1 of 2 calibration targets pass; toy zero-shot 55.0 (RN50 86.3)")
    return {**made, "status": "ok", "runtime_s": 30.0, "html": "calibration.html", "provenance": PROVENANCE}


def coop_record(profile: str) -> dict:
    error = "MissingDatasetError: no eurosat under ~/data"
    return {"status": "failed", "runtime_s": 1.0, "error": error, "html": "coop.html", "claims": [
        {"id": "beats-zero-shot-16", "statement": "CoOp beats the hand-crafted prompt at 16 shots",
         "verdict": "not tested", "effect": None, "interval": None, "margin": 0.0, "paper_effect": 15.0,
         "reason": f"the notebook failed: {error}", "sentence": f"Not tested: the notebook failed ({error})."}]}


def _png() -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2.5, 1.5))
    ax.plot([1, 2, 4, 8, 16], [40, 50, 60, 65, 70], marker="o")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def executed_notebook(title: str, record: dict | None, error: str = "") -> nbformat.NotebookNode:
    """A tiny executed notebook: title, the method's equation, a figure, and the record's output (or an error)."""
    notebook = nbformat.v4.new_notebook()
    figure = nbformat.v4.new_code_cell("fig", execution_count=1, outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": _png(), "text/plain": "<Figure>"})])
    last = nbformat.v4.new_code_cell("clipbook.record(...)", execution_count=2)
    if record is not None:
        shown = {key: value for key, value in record.items()
                 if key not in ("status", "runtime_s", "html", "provenance")}
        last.outputs = [nbformat.v4.new_output("display_data", data={
            RECORD_MIME: json.dumps(shown), "text/html": _html(shown), "text/plain": "record"})]
    if error:
        last.outputs = [nbformat.v4.new_output("error", ename=error.split(":")[0], evalue=error, traceback=[error])]
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {title}"),
                      nbformat.v4.new_markdown_cell(f"The method, as in the paper:\n\n{EQUATION}\n\nwith $K$ classes."),
                      figure, last]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


PAPERS = {"gda": ("GDA — fixture", gda_record), "coop": ("CoOp — fixture", coop_record),
          "calibration": ("The toy suite — fixture", calibration_record)}


def results_of(profile: str) -> dict:
    """The results.json the runner writes for the fixture records under `profile`."""
    return {"schema": 2, "profile": profile,
            "papers": {slug: {"title": title, **make(profile)} for slug, (title, make) in PAPERS.items()}}


def build_report(root: Path) -> Path:
    """reports/offline and reports/paper under `root`, rendered by the runner as `invoke reports` does."""
    from clipbook.batch import runner

    (root / "notebooks").mkdir(parents=True)
    for slug, (title, _) in PAPERS.items():
        nbformat.write(executed_notebook(title, None), root / "notebooks" / f"{slug}.ipynb")
    for profile in ("offline", "paper"):
        out = runner.report_dir(root, profile)
        (out / "notebooks").mkdir(parents=True)
        (out / "records").mkdir()
        for slug, (title, make) in PAPERS.items():
            record = make(profile)
            executed = executed_notebook(title, None if record["status"] != "ok" else record, record.get("error", ""))
            nbformat.write(executed, out / "notebooks" / f"{slug}.ipynb")
            (out / "records" / f"{slug}.json").write_text(json.dumps(record))
        runner.render_reports(root, profile)
    return root / "reports"


@pytest.fixture(scope="session")
def fixture_report(tmp_path_factory) -> Path:
    """reports/ of a workbook with gda, coop (failed) and calibration run under the offline and paper profiles."""
    return build_report(tmp_path_factory.mktemp("workbook"))


@pytest.fixture(scope="session")
def fixture_results() -> dict[str, dict]:
    """{profile: results.json} of the fixture records, for tests that render without writing files."""
    return {profile: results_of(profile) for profile in ("offline", "paper")}
