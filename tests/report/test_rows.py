import math

import pytest

from clipbook.report.rows import (ModelRows, arm_means, as_frame, compare_with_reported, records, reported_rows,
                                  summarise)


def _rows():
    return [{"model": "m", "dataset": "d", "method": "A", "metric": "accuracy", "shots": 16, "seed": s, "value": v}
            for s, v in ((1, 80.0), (2, 82.0), (3, 84.0))]


def test_rows_are_validated():
    with pytest.raises(KeyError, match="missing metric"):
        as_frame([{"model": "m", "dataset": "d", "method": "A", "value": 1.0}])
    with pytest.raises(TypeError, match="value must be a number"):
        as_frame([{**_rows()[0], "value": "high"}])
    with pytest.raises(ValueError, match="finite"):
        as_frame([{**_rows()[0], "value": float("inf")}])
    with pytest.raises(TypeError, match="dataset must be a non-empty string"):
        as_frame([{**_rows()[0], "dataset": None}])
    assert as_frame([]).empty and as_frame(None).empty


def test_summary_has_mean_sd_and_t_interval():
    summary = summarise(_rows()).iloc[0]
    assert summary["mean"] == 82.0 and summary["std"] == 2.0 and summary["count"] == 3
    assert summary["ci_high"] - 82.0 == pytest.approx(4.302652729911275 * 2.0 / math.sqrt(3))


def test_reported_rows_need_a_source_and_are_compared_on_the_same_keys():
    with pytest.raises(ValueError, match="source"):
        reported_rows([{"dataset": "d", "value": 1.0}], source="", model="m", method="A", metric="accuracy")
    reported = reported_rows([{"dataset": "d", "shots": 16, "value": 80.5}, {"dataset": "e", "shots": 16, "value": 1}],
                             source="Table 1", url="https://x", model="m", method="A", metric="accuracy")
    assert reported[0]["source"] == "Table 1" and reported[0]["url"] == "https://x"
    comparison = compare_with_reported(_rows(), reported)
    matched = comparison[comparison["dataset"] == "d"].iloc[0]
    assert matched["reproduced"] == 82.0 and matched["delta"] == pytest.approx(1.5)
    assert math.isnan(comparison[comparison["dataset"] == "e"].iloc[0]["reproduced"])


def test_records_are_json_ready():
    out = records(as_frame(_rows() + [{"model": "m", "dataset": "d", "method": "Z", "metric": "accuracy",
                                       "value": 1 / 3}]))
    assert out[0]["seed"] == 1 and isinstance(out[0]["seed"], int) and out[-1] == {
        "model": "m", "dataset": "d", "method": "Z", "metric": "accuracy", "value": 0.3333}


def test_model_rows_carry_model_method_and_seed():
    built = ModelRows("tiny", "A", seed=2)
    built.add("d", "accuracy", 81)
    built.add_all("e", {"R@1 text→image": 40.0, "R@1 image→text": 30.0})
    assert [(r["dataset"], r["metric"], r["value"]) for r in built.rows] == [
        ("d", "accuracy", 81.0), ("e", "R@1 text→image", 40.0), ("e", "R@1 image→text", 30.0)]
    assert {(r["model"], r["method"], r["seed"]) for r in built.rows} == {("tiny", "A", 2)}
    assert isinstance(built.rows[0]["value"], float)


def test_arm_means_weigh_each_seed_the_same_and_keep_the_given_order():
    rows = []
    for method, seed, dataset, value in (("A", 1, "d1", 10.0), ("A", 1, "d2", 20.0), ("A", 2, "d1", 30.0),
                                         ("B", None, "d1", 5.0)):
        built = ModelRows("m", method, seed)
        built.add(dataset, "accuracy", value)
        built.add(dataset, "gap", 1.0)
        rows += built.rows
    table = arm_means(rows, order=["B", "missing", "A"], columns=["accuracy", "absent"])
    assert list(table.index) == ["B", "A"] and list(table.columns) == ["accuracy"]
    # seed 1 averages its two datasets (15) before the seeds are averaged: (15 + 30) / 2, not (10 + 20 + 30) / 3
    assert table.loc["A", "accuracy"] == 22.5 and table.loc["B", "accuracy"] == 5.0
    assert list(arm_means(rows, order=["A"]).columns) == ["accuracy", "gap"]
