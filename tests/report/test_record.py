import json

import nbformat
import pytest

from clipbook.report import record as rec


def test_make_record_validates_numbers_and_keys():
    made = rec.make_record(metrics={"acc": 81.23456}, baseline={"zs": 70}, claim="x", claim_holds=True)
    assert made["metrics"] == {"acc": 81.2346} and made["key_metric"] == "acc" and made["key_baseline"] == "zs"
    with pytest.raises(TypeError, match="must be a number"):
        rec.make_record(metrics={"acc": "high"}, claim="x", claim_holds=None)
    with pytest.raises(ValueError, match="finite"):
        rec.make_record(metrics={"acc": float("nan")}, claim="x", claim_holds=None)
    with pytest.raises(TypeError, match="claim_holds"):
        rec.make_record(metrics={"acc": 1}, claim="x", claim_holds="yes")
    with pytest.raises(KeyError, match="key_metric"):
        rec.make_record(metrics={"acc": 1}, claim="x", claim_holds=None, key_metric="nope")


def test_record_round_trips_through_a_notebook_output():
    made = rec.make_record(metrics={"acc": 90.0}, baseline={"zs": 80.0}, claim="beats zs", claim_holds=True)
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("record(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={rec.RECORD_MIME: made, "text/plain": "..."})]
    notebook.cells = [nbformat.v4.new_code_cell("1"), cell]
    nbformat.validate(notebook)
    assert rec.read_record(notebook) == made
    assert rec.read_record(nbformat.v4.new_notebook()) is None
    # the same numbers appear in the displayed table
    assert "90.00" in rec._html_table(made) and "holds" in rec._text_table(made).lower()
    json.dumps(made)
