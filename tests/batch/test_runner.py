"""The batch runner on a real notebook (gda, shrunk by parameters) plus a failing one."""
import json
import shutil
from pathlib import Path

import pytest

from clipbook.batch import runner
from clipbook.batch.profiles import BatchInputError
from tests.batch.notebooks import write_notebook

ROOT = Path(__file__).resolve().parents[2]
QUICK_GDA = {"seeds": [1], "shots": [1, 2], "augment_epochs": 2}


@pytest.fixture
def workbook(tmp_path):
    (tmp_path / "notebooks" / "profiles").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / "gda.ipynb", tmp_path / "notebooks" / "gda.ipynb")
    write_notebook(tmp_path / "notebooks" / "broken.ipynb", 'raise RuntimeError("deliberate failure")')
    write_notebook(tmp_path / "notebooks" / "silent.ipynb", "x = 1  # never calls record()")
    return tmp_path


def test_batch_records_results_survives_failures_and_resumes(workbook):
    logs = []
    # extra parameters apply to every selected paper, so gda runs alone with its quick settings
    results = runner.run_batch(workbook, papers=["gda"], extra=QUICK_GDA, log=logs.append)
    gda = results["papers"]["gda"]
    assert gda["status"] == "ok", gda.get("error")
    assert {(row["method"], row.get("shots")) for row in gda["rows"]} >= {("GDA", 1), ("GDA", 2), ("zero-shot CLIP", None)}
    assert {claim["id"] for claim in gda["claims"]} == {"beats-zero-shot", "beats-linear-probe"}
    assert all(claim["verdict"] in ("holds", "does not hold", "inconclusive", "not tested") for claim in gda["claims"])
    assert gda["provenance"]["parameters"]["seeds"] == [1] and gda["provenance"]["models"]
    assert gda["reported"] and gda["title"].startswith("GDA")
    assert (workbook / "reports/offline/gda.html").exists()
    page = (workbook / "reports/offline/gda.html").read_text()
    # math renders offline: MathJax comes from the local copy and no script is loaded from a CDN
    assert '<script src="https://' not in page and '<script src="_static/tex-svg-full.js' in page
    assert (workbook / "reports/offline/_static/tex-svg-full.js").exists()
    assert 'class="clipbook-band"' in page and "GDA beats zero-shot CLIP" in page.split("</header>")[0]

    results = runner.run_batch(workbook, papers=["broken", "silent"], workers=2, log=logs.append)
    assert results["papers"]["broken"]["status"] == "failed"
    assert "deliberate failure" in results["papers"]["broken"]["error"]
    assert "deliberate failure" in (workbook / "reports/offline/broken.html").read_text()
    # a failed paper keeps its claims, each not tested with the error as the reason
    assert [c["verdict"] for c in results["papers"]["broken"]["claims"]] == ["not tested"]
    assert "deliberate failure" in results["papers"]["broken"]["claims"][0]["reason"]
    assert "record(" in results["papers"]["silent"]["error"]
    assert results["papers"]["gda"]["status"] == "ok"  # earlier results are kept

    on_disk = json.loads((workbook / "reports/offline/results.json").read_text())
    assert set(on_disk["papers"]) == {"gda", "broken", "silent"}
    assert on_disk["schema"] == 2 and on_disk["profile"] == "offline"
    assert "gda" in (workbook / "reports/offline/index.html").read_text()

    logs.clear()
    runner.run_batch(workbook, papers=["gda"], extra=QUICK_GDA, log=logs.append)
    assert any(line.startswith("[skip] gda") for line in logs)  # resumed, not redone
    logs.clear()
    runner.run_batch(workbook, papers=["gda"], extra={**QUICK_GDA, "seeds": [2]}, log=logs.append)
    assert any(line.startswith("[ok] gda") for line in logs)  # new parameters: rerun


def test_bad_input_is_refused_before_any_kernel_starts(workbook):
    with pytest.raises(BatchInputError, match="unknown paper"):
        runner.run_batch(workbook, papers=["gda", "nope"])
    with pytest.raises(BatchInputError, match="unknown parameter 'sedes'"):
        runner.run_batch(workbook, papers=["gda"], extra={"sedes": [1]})
    assert not (workbook / "reports" / "offline" / "records").exists()


def test_input_hash_changes_with_notebook_parameters_and_imported_library_code(tmp_path, monkeypatch):
    from clipbook.batch import contract

    notebook = tmp_path / "paper.ipynb"
    write_notebook(notebook, "from clipbook import metrics")
    fake = tmp_path / "metrics.py"
    fake.write_text("x = 1\n")
    real = contract._module_file
    monkeypatch.setattr(contract, "_module_file", lambda name: fake if name == "clipbook.metrics" else real(name))
    before = runner.input_hash(notebook, {"seeds": [1]})
    assert runner.input_hash(notebook, {"seeds": [1]}) == before
    assert runner.input_hash(notebook, {"seeds": [2]}) != before
    fake.write_text("x = 2\n")
    assert runner.input_hash(notebook, {"seeds": [1]}) != before


def test_shared_artifacts_come_from_each_notebooks_declaration():
    real = {path.stem: path for path in (ROOT / "notebooks").glob("*.ipynb")}
    assert runner.shared_artifacts_needed([real["gda"]]) == ["tiny-clip"]
    assert runner.shared_artifacts_needed([real["gda"], real["nola"]]) == ["tiny-clip", "tiny-ssl"]
    assert runner.shared_artifacts_needed([real["holistic-robustness"], real["nola"]]) == [
        "tiny-clip", "tiny-ssl", "tiny-supervised"]
    assert runner.shared_artifacts_needed([]) == []


def test_a_workbook_page_writes_its_artifacts_beside_results_and_is_listed_apart(tmp_path):
    (tmp_path / "notebooks").mkdir()
    body = ("import clipbook\nsession = clipbook.start(SPEC, globals())\n"
            "rows = [{'model': 'm', 'dataset': 'd', 'method': 'zero-shot CLIP', 'metric': 'accuracy', 'value': 50.0}]\n"
            "clipbook.record(session, rows=rows, kind='workbook', summary='1 of 1 targets pass',\n"
            "                artifacts={'calibration.json': {'average': {'zero_shot': 50.0}}})")
    write_notebook(tmp_path / "notebooks" / "page.ipynb", body, title="# A workbook page",
              claims="CLAIMS = []  # a workbook page states no paper's claims", needs=", needs=()")
    results = runner.run_batch(tmp_path, papers=["page"], log=lambda line: None)
    assert results["papers"]["page"]["status"] == "ok", results["papers"]["page"].get("error")
    written = json.loads((tmp_path / "reports/offline/calibration.json").read_text())
    assert written == {"average": {"zero_shot": 50.0}}
    index = (tmp_path / "reports/offline/index.html").read_text()
    assert "Workbook pages" in index and "1 of 1 targets pass" in index


def test_rehearsal_kernels_never_reach_the_hub():
    environment = runner.kernel_environment("rehearsal")
    assert environment["CLIPBOOK_PROFILE"] == "rehearsal" and environment["HF_HUB_OFFLINE"] == "1"
    assert "HF_HUB_OFFLINE" not in runner.kernel_environment("paper")


def test_parallel_rehearsal_kernels_split_the_cores_and_other_runs_keep_the_default(monkeypatch):
    monkeypatch.delenv("CLIPBOOK_THREADS", raising=False)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)
    assert runner.rehearsal_threads("rehearsal", 2) == 1
    assert runner.rehearsal_threads("rehearsal", 4) == 1  # never below one thread
    assert runner.rehearsal_threads("rehearsal", 1) is None
    assert runner.rehearsal_threads("offline", 2) is None  # its stored outputs were made with the default
    assert runner.kernel_environment("rehearsal", 1)["CLIPBOOK_THREADS"] == "1"
    assert "CLIPBOOK_THREADS" not in runner.kernel_environment("rehearsal")
    monkeypatch.setenv("CLIPBOOK_THREADS", "2")  # the user's own choice wins
    assert runner.rehearsal_threads("rehearsal", 2) is None
