"""The batch runner on a real notebook (gda, shrunk by parameters) plus a failing one."""
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from clipbook.batch import runner
from clipbook.batch.profiles import BatchInputError

ROOT = Path(__file__).resolve().parents[2]
QUICK_GDA = {"seeds": [1], "shots": [1, 2], "augment_epochs": 2}


def _failing_notebook(path: Path, body: str) -> None:
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('profile = "offline"')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell("# A deliberately failing notebook"), parameters,
                      nbformat.v4.new_code_cell(body)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


@pytest.fixture
def workbook(tmp_path):
    (tmp_path / "notebooks" / "profiles").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / "gda.ipynb", tmp_path / "notebooks" / "gda.ipynb")
    _failing_notebook(tmp_path / "notebooks" / "broken.ipynb", 'raise RuntimeError("deliberate failure")')
    _failing_notebook(tmp_path / "notebooks" / "silent.ipynb", "x = 1  # never calls record()")
    return tmp_path


def test_batch_records_results_survives_failures_and_resumes(workbook):
    logs = []
    # extra parameters apply to every selected paper, so gda runs alone with its quick settings
    results = runner.run_batch(workbook, papers=["gda"], extra=QUICK_GDA, log=logs.append)
    gda = results["papers"]["gda"]
    assert gda["status"] == "ok", gda.get("error")
    assert set(gda["metrics"]) >= {"gda_1shot", "gda_2shot"} and gda["claim_holds"] in (True, False)
    assert (workbook / "reports/offline/gda.html").exists()
    page = (workbook / "reports/offline/gda.html").read_text()
    # math renders offline: MathJax comes from the local copy and no script is loaded from a CDN
    assert '<script src="https://' not in page and '<script src="_static/mathjax/MathJax.js' in page
    assert (workbook / "reports/offline/_static/mathjax/MathJax.js").exists()

    results = runner.run_batch(workbook, papers=["broken", "silent"], workers=2, log=logs.append)
    assert results["papers"]["broken"]["status"] == "failed"
    assert "deliberate failure" in results["papers"]["broken"]["error"]
    assert "deliberate failure" in (workbook / "reports/offline/broken.html").read_text()
    assert "record(" in results["papers"]["silent"]["error"]
    assert results["papers"]["gda"]["status"] == "ok"  # earlier results are kept

    on_disk = json.loads((workbook / "reports/offline/results.json").read_text())
    assert set(on_disk["papers"]) == {"gda", "broken", "silent"}
    assert set(on_disk["provenance"]) == {"git_commit", "python", "torch", "open_clip", "device"}
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


def test_input_hash_changes_with_notebook_parameters_and_library_code(tmp_path):
    notebook, library = tmp_path / "paper.ipynb", tmp_path / "clipbook"
    notebook.write_text("{}")
    (library / "models").mkdir(parents=True)
    (library / "models" / "loader.py").write_text("x = 1\n")
    before = runner.input_hash(notebook, {"seeds": [1]}, library)
    assert runner.input_hash(notebook, {"seeds": [1]}, library) == before
    assert runner.input_hash(notebook, {"seeds": [2]}, library) != before
    (library / "models" / "loader.py").write_text("x = 2\n")
    assert runner.input_hash(notebook, {"seeds": [1]}, library) != before


def test_shared_artifacts_are_built_only_for_the_notebooks_that_use_them(tmp_path):
    plain, ssl_user = tmp_path / "plain.ipynb", tmp_path / "ssl.ipynb"
    _failing_notebook(plain, "x = 1")
    _failing_notebook(ssl_user, "from clipbook.models import tiny_ssl")
    assert runner.shared_artifacts_needed([plain]) == ["tiny CLIP"]
    assert runner.shared_artifacts_needed([plain, ssl_user]) == ["tiny CLIP", "tiny SSL encoder"]
    assert runner.shared_artifacts_needed([]) == []
    real = {path.stem: path for path in (ROOT / "notebooks").glob("*.ipynb")}
    assert runner.shared_artifacts_needed([real["nola"]]) == ["tiny CLIP", "tiny SSL encoder"]
    assert runner.shared_artifacts_needed([real["gda"]]) == ["tiny CLIP"]
