"""The notebook contract (CONTRIBUTING.md), checked over every notebook; nbval checks their outputs separately."""
from pathlib import Path

import jupytext
import nbformat
import pytest

from clipbook.batch import contract
from clipbook.batch.parameters import NotebookSpec
from clipbook.claims import Claim, evaluate

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Papers whose reported rows are complete enough that at least one claim must be evaluated on them (issue 9).
REPORTED_REQUIRED = {"gda", "clip-svd", "coop"}


def _without_jupytext_version(text: str) -> str:
    """The script without its header's `jupytext_version` line: jupytext writes the version installed, which a fresh
    install may have moved past the one that last synced the pair; the inputs are what must agree."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#       jupytext_version:"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_paired_script_has_the_same_inputs(path):
    script = path.with_suffix(".py")
    assert script.exists(), f"{path.name} has no paired py:percent script; run `invoke sync`"
    from_notebook = jupytext.writes(nbformat.read(path, as_version=4), fmt="py:percent")
    assert _without_jupytext_version(from_notebook) == _without_jupytext_version(script.read_text()), \
        f"{path.name} and {script.name} differ; run `invoke sync`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_the_contract(path):
    notebook = nbformat.read(path, as_version=4)
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    defaults = contract.parameter_defaults(path)  # literals only
    assert defaults["profile"] == "offline"
    namespace = contract.definitions(path)
    spec = namespace["SPEC"]
    assert isinstance(spec, NotebookSpec)
    assert spec.check(defaults) == defaults  # every parameter declared, every default valid
    claims = namespace["CLAIMS"]
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    workbook_page = "kind=\"workbook\"" in code[-1]  # a page about the workbook itself states no paper claims
    assert (claims or workbook_page) and all(isinstance(claim, Claim) for claim in claims)
    assert sum("clipbook.start(SPEC, globals())" in source for source in code) == 1
    assert "clipbook.record(session" in code[-1], "the record is the last code cell"
    executed = [c for c in notebook.cells if c.cell_type == "code" and c.execution_count]
    assert executed, "commit notebooks with their offline outputs (`invoke refresh`)"
    assert "papermill" not in notebook.metadata, "volatile papermill metadata; use `invoke refresh`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_claims_hold_on_the_papers_own_reported_rows(path):
    """A rule that the paper's own numbers fail is a wrong rule."""
    namespace = contract.definitions(path)
    verdicts = evaluate(namespace["CLAIMS"], namespace["REPORTED"]) if namespace["REPORTED"] else []
    tested = [v for v in verdicts if v["verdict"] != "not tested"]
    for verdict in tested:
        assert verdict["verdict"] == "holds", f"{verdict['id']}: {verdict['sentence']}"
    if path.stem in REPORTED_REQUIRED:
        assert tested, f"{path.stem}: no claim is evaluated on the reported rows"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_assignment_of_the_parameters_cell_is_a_papermill_parameter(path):
    """papermill skips a line it cannot parse (e.g. an '=' inside a comment) with only a log warning; that
    parameter then cannot be overridden and the batch refuses it as unknown."""
    from papermill.inspection import inspect_notebook

    assert set(contract.parameter_defaults(path)) == set(inspect_notebook(str(path)))


def test_no_notebook_states_a_conclusion_in_fixed_prose():
    for path in NOTEBOOKS:
        text = path.with_suffix(".py").read_text().lower()
        for phrase in ("the claim holds", "the claim does not hold", "reading the offline results",
                       "offline profile in words"):
            assert phrase not in text, f"{path.stem}: '{phrase}'"


def test_the_template_scaffolds_a_notebook_that_follows_the_contract(tmp_path):
    from clipbook.batch.scaffold import new_paper

    (tmp_path / "notebooks" / "profiles" / "paper").mkdir(parents=True)
    (tmp_path / "notebooks" / "_template.py").write_text((ROOT / "notebooks" / "_template.py").read_text())
    written = new_paper(tmp_path, "demo-paper", title="Demo")
    notebook = written[0]
    assert notebook.exists() and notebook.with_suffix(".py").exists() and written[2].exists()
    assert nbformat.read(notebook, as_version=4).cells[0].source.startswith("# Demo")
    namespace = contract.definitions(notebook)
    assert namespace["SPEC"].check(contract.parameter_defaults(notebook))
    with pytest.raises(ValueError, match="already exists"):
        new_paper(tmp_path, "demo-paper", title="Demo")
    with pytest.raises(ValueError, match="slug"):
        new_paper(tmp_path, "Demo Paper", title="Demo")
