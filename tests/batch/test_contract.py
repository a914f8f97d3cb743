from pathlib import Path

import nbformat
import pytest

from clipbook.batch import contract

ROOT = Path(__file__).resolve().parents[2]


def _notebook(path: Path, cells: dict[str, str], extra: str = "") -> Path:
    notebook = nbformat.v4.new_notebook()
    for tag, source in cells.items():
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = [tag]
        notebook.cells.append(cell)
    notebook.cells.append(nbformat.v4.new_code_cell(extra))
    nbformat.write(notebook, path)
    return path


SPEC_CELL = 'from clipbook.batch.parameters import declare\nSPEC = declare("profile", "seeds")'
CLAIMS_CELL = 'from clipbook.claims import Claim\nCLAIMS = [Claim("c", "s", "A", "B")]'


def test_definitions_read_spec_claims_and_reported_without_a_kernel(tmp_path):
    path = _notebook(tmp_path / "p.ipynb", {"parameters": 'profile = "offline"\nseeds = [1, 2]',
                                            "parameter-spec": SPEC_CELL, "claims": CLAIMS_CELL})
    assert contract.parameter_defaults(path) == {"profile": "offline", "seeds": [1, 2]}
    found = contract.definitions(path, {"seeds": [3]})
    assert found["seeds"] == [3] and found["REPORTED"] == [] and found["CLAIMS"][0].id == "c"
    assert list(contract.notebook_spec(path).parameters) == ["profile", "seeds"]


def test_contract_violations_are_named(tmp_path):
    with pytest.raises(contract.ContractError, match="no cell tagged 'claims'"):
        contract.tagged_sources(_notebook(tmp_path / "a.ipynb", {"parameters": "x = 1", "parameter-spec": SPEC_CELL}))
    derived = _notebook(tmp_path / "b.ipynb", {"parameters": "x = 1\ny = x + 1", "parameter-spec": SPEC_CELL,
                                               "claims": CLAIMS_CELL})
    with pytest.raises(contract.ContractError, match="'y' is not a literal"):
        contract.parameter_defaults(derived)
    no_spec = _notebook(tmp_path / "c.ipynb", {"parameters": "x = 1", "parameter-spec": "SPECS = 1",
                                               "claims": CLAIMS_CELL})
    with pytest.raises(contract.ContractError, match="must define SPEC"):
        contract.notebook_spec(no_spec)


def test_library_modules_follow_imports_transitively(tmp_path):
    path = _notebook(tmp_path / "p.ipynb", {}, "from clipbook import metrics\nimport numpy")
    modules = contract.library_modules(path)
    assert "clipbook.metrics" in modules and "clipbook" in modules
    assert "clipbook.models.tiny_ssl" not in modules
    gda = contract.library_modules(ROOT / "notebooks" / "gda.ipynb")
    # gda uses the harness, which uses the feature cache, which uses the loader
    assert {"clipbook.evaluation.classification", "clipbook.features", "clipbook.models.loader"} <= set(gda)


def test_library_hash_changes_with_the_source_of_an_imported_module(tmp_path, monkeypatch):
    path = _notebook(tmp_path / "p.ipynb", {}, "from clipbook import metrics")
    fake = tmp_path / "metrics.py"
    fake.write_text("x = 1\n")
    real = contract._module_file
    monkeypatch.setattr(contract, "_module_file", lambda name: fake if name == "clipbook.metrics" else real(name))
    before = contract.library_hash(path)
    fake.write_text("x = 2\n")
    assert contract.library_hash(path) != before
