import json

import nbformat
import pytest

from clipbook.claims import Claim, at_least
from clipbook.report import record as rec

ROWS = [{"model": "m", "dataset": "d", "method": "A", "metric": "accuracy", "seed": s, "value": 80.0 + s}
        for s in (1, 2, 3)] + [{"model": "m", "dataset": "d", "method": "Z", "metric": "accuracy", "value": 70.0}]
REPORTED = [{"model": "m", "dataset": "d", "method": method, "metric": "accuracy", "value": value, "source": "Table 1"}
            for method, value in (("A", 83.0), ("Z", 70.0))]
CLAIMS = [Claim("beats", "A beats Z", "A", "Z", paper_effect=13.0), Claim("gated", "A beats Z (gated)", "A", "Z",
                                                                         requires=("loss fell",))]


def test_record_holds_rows_reported_claims_and_comparison():
    made = rec.make_record(rows=ROWS, claims=CLAIMS, reported=REPORTED,
                           preconditions=[at_least("loss fell", "training loss fell by", 0.0, 0.1)])
    assert made["schema"] == 2 and len(made["rows"]) == 4 and made["reported"][0]["source"] == "Table 1"
    beats, gated = made["claims"]
    assert beats["verdict"] == "holds" and beats["effect"] == pytest.approx(12.0)
    assert beats["reported_effect"] == pytest.approx(13.0)
    assert gated["verdict"] == "not tested" and "0 < 0.1" in gated["reason"]
    assert made["comparison"][0] == {"model": "m", "dataset": "d", "method": "A", "metric": "accuracy",
                                     "reported": 83.0, "reproduced": 82.0, "delta": -1.0, "source": "Table 1"}
    assert made["comparison"][1]["delta"] == 0.0
    json.dumps(made)


def test_record_refuses_missing_claims_rows_and_wrong_types():
    with pytest.raises(ValueError, match="at least one claim"):
        rec.make_record(rows=ROWS, claims=[])
    with pytest.raises(ValueError, match="result rows"):
        rec.make_record(rows=[], claims=CLAIMS)
    with pytest.raises(TypeError, match="Claim"):
        rec.make_record(rows=ROWS, claims=[{"id": "x"}])
    with pytest.raises(TypeError, match="preconditions"):
        rec.make_record(rows=ROWS, claims=CLAIMS, preconditions=[True])


def test_record_round_trips_through_a_notebook_output_with_provenance_in_metadata():
    made = rec.make_record(rows=ROWS, claims=CLAIMS[:1])
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("clipbook.record(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={rec.RECORD_MIME: json.dumps(made), "text/plain": "."},
                                           metadata={rec.RECORD_MIME: {"provenance": {"git": {"commit": "abc"}}}})]
    notebook.cells = [nbformat.v4.new_code_cell("1"), cell]
    nbformat.validate(notebook)
    assert rec.read_record(notebook) == {**made, "provenance": {"git": {"commit": "abc"}}}
    assert rec.read_record(nbformat.v4.new_notebook()) is None
    # the displayed tables carry the same verdicts and sentences
    assert "holds" in rec._html(made) and made["claims"][0]["sentence"] in rec._text(made)
    assert "Effect on the toy world" in rec._html(made)


def test_a_workbook_record_needs_no_claims_and_carries_its_artifacts_and_summary():
    made = rec.make_record(rows=ROWS, claims=[], kind="workbook", summary="3 of 4 targets pass",
                           artifacts={"calibration.json": {"average": {"zero_shot": 58.0}}})
    assert made["kind"] == "workbook" and made["claims"] == [] and made["summary"] == "3 of 4 targets pass"
    assert made["artifacts"]["calibration.json"]["average"]["zero_shot"] == 58.0
    assert "3 of 4 targets pass" in rec._html(made) and "<th>claim</th>" not in rec._html(made)
    assert "kind" not in rec.make_record(rows=ROWS, claims=CLAIMS[:1])  # a paper's record is unchanged
    with pytest.raises(ValueError, match="kind"):
        rec.make_record(rows=ROWS, claims=CLAIMS, kind="essay")
    with pytest.raises(ValueError, match="plain file name"):
        rec.make_record(rows=ROWS, claims=[], kind="workbook", artifacts={"../escape.json": {}})


def test_under_the_rehearsal_profile_every_claim_is_not_tested_because_the_weights_are_random():
    made = rec.make_record(rows=ROWS, claims=CLAIMS, profile="rehearsal",
                           preconditions=[at_least("loss fell", "training loss fell by", 1.0, 0.1)])
    assert [c["verdict"] for c in made["claims"]] == ["not tested", "not tested"]
    assert all("weights are random (rehearsal)" in c["reason"] for c in made["claims"])
    assert [p["id"] for p in made["preconditions"]] == ["loss fell", "weights-are-trained"]
    assert "Rehearsal, not a test" in rec._html(made)
    paper = rec.make_record(rows=ROWS, claims=CLAIMS, profile="paper",
                            preconditions=[at_least("loss fell", "training loss fell by", 1.0, 0.1)])
    assert [c["verdict"] for c in paper["claims"]] == ["holds", "holds"]
