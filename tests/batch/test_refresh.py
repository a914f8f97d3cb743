import nbformat

from clipbook.batch.refresh import refresh_notebook, strip_volatile_metadata


def _notebook(path, source):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_volatile_metadata_is_stripped_and_empty_tags_dropped():
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1")
    cell.metadata.update({"papermill": {"duration": 1.0}, "execution": {"iopub.status.busy": "t"}, "tags": []})
    notebook.cells = [cell]
    notebook.metadata["papermill"] = {"start_time": "t"}
    strip_volatile_metadata(notebook)
    assert "papermill" not in notebook.metadata and cell.metadata == {}


def test_refresh_executes_in_place_and_pairs_the_script(tmp_path):
    (tmp_path / "jupytext.toml").write_text('formats = "ipynb,py:percent"\n')  # as in notebooks/
    path = tmp_path / "paper.ipynb"
    _notebook(path, "print(6 * 7)")
    refresh_notebook(path)
    notebook = nbformat.read(path, as_version=4)
    assert notebook.cells[0].outputs[0]["text"].strip() == "42"
    assert "papermill" not in notebook.metadata and "papermill" not in notebook.cells[0].metadata
    assert "print(6 * 7)" in path.with_suffix(".py").read_text()
