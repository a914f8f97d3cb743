"""Structural checks every paper notebook must pass (nbval checks their outputs separately)."""
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_paired_script_has_the_same_inputs(path):
    script = path.with_suffix(".py")
    assert script.exists(), f"{path.name} has no paired py:percent script; run `invoke sync`"
    from_notebook = jupytext.writes(nbformat.read(path, as_version=4), fmt="py:percent")
    assert from_notebook == script.read_text(), f"{path.name} and {script.name} differ; run `invoke sync`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_declares_profile_records_a_result_and_stores_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    parameters = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1 and 'profile = "offline"' in parameters[0].source
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "record(" in code and "clipbook.setup(profile" in code
    executed = [c for c in notebook.cells if c.cell_type == "code" and c.execution_count]
    assert executed, "commit notebooks with their offline outputs (`invoke refresh`)"
    assert "papermill" not in notebook.metadata, "volatile papermill metadata; use `invoke refresh`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_assignment_of_the_parameters_cell_is_a_papermill_parameter(path):
    """papermill skips a line it cannot parse (e.g. an '=' inside the comment) with only a log warning; that
    parameter then cannot be overridden and the batch refuses it as unknown."""
    from clipbook.batch.profiles import notebook_parameters

    notebook = nbformat.read(path, as_version=4)
    source = next(c.source for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assigned = {line.split("=")[0].strip() for line in source.splitlines() if "=" in line and line[:1].isalpha()}
    assert assigned - set(notebook_parameters(path)) == set(), "rewrite those lines' comments without '='"
