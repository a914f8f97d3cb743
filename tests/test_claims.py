import math

import pytest

from clipbook.claims import Claim, Precondition, at_least, evaluate, evaluate_claim, fact


def _rows(gains, zero_shot=(60.0, 40.0), shots=(1, 16)):
    """GDA = zero-shot + gains[seed][shots] on two datasets; zero-shot has no seed and no shots."""
    rows = []
    for dataset, zs in zip(("a", "b"), zero_shot):
        rows.append({"model": "m", "dataset": dataset, "method": "zero-shot", "metric": "accuracy", "value": zs})
        for seed, per_shot in gains.items():
            for k in shots:
                rows.append({"model": "m", "dataset": dataset, "method": "GDA", "metric": "accuracy", "seed": seed,
                             "shots": k, "value": zs + per_shot[k]})
    return rows


CLAIM = Claim("beats", "GDA beats zero-shot", method="GDA", baseline="zero-shot", per=("shots",))


def test_effect_is_the_mean_over_seeds_then_datasets_with_a_t_interval_over_seeds():
    gains = {1: {1: 1.8, 16: 5.0}, 2: {1: 2.0, 16: 6.0}, 3: {1: 2.2, 16: 7.0}}
    result = evaluate_claim(CLAIM, _rows(gains))
    assert result["verdict"] == "holds"
    by_group = {g["group"]: g for g in result["groups"]}
    assert by_group["shots = 16"]["effect"] == pytest.approx(6.0)
    low, high = by_group["shots = 1"]["interval"]
    half = 4.302652729911275 * 0.2 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert (low, high) == pytest.approx((2.0 - half, 2.0 + half))
    assert result["effect"] == pytest.approx(2.0)  # the weakest group is reported
    assert "+2.00" in result["sentence"] and "shots = 1" in result["sentence"]


def test_four_verdicts():
    holds = {1: {1: 1.0, 16: 1.0}, 2: {1: 1.2, 16: 1.2}, 3: {1: 0.8, 16: 0.8}}
    straddles = {1: {1: -1.0, 16: 1.0}, 2: {1: 1.0, 16: 1.0}, 3: {1: 0.5, 16: 1.0}}
    below = {1: {1: -2.0, 16: 1.0}, 2: {1: -2.5, 16: 1.0}, 3: {1: -1.5, 16: 1.0}}
    assert evaluate_claim(CLAIM, _rows(holds))["verdict"] == "holds"
    assert evaluate_claim(CLAIM, _rows(straddles))["verdict"] == "inconclusive"
    assert evaluate_claim(CLAIM, _rows(below))["verdict"] == "does not hold"  # any group failing fails the claim
    failed = at_least("encoder", "k-NN accuracy above chance + 10", 13.4, 18.3)
    result = evaluate_claim(Claim("x", "s", "GDA", "zero-shot", requires=("encoder",)), _rows(holds),
                            preconditions=[failed])
    assert result["verdict"] == "not tested" and "13.4 < 18.3" in result["reason"]
    unmeasured = evaluate_claim(Claim("x", "s", "GDA", "zero-shot", requires=("schedule",)), _rows(holds),
                                preconditions=[])
    assert unmeasured["verdict"] == "not tested" and "not measured" in unmeasured["reason"]
    no_rows = evaluate_claim(Claim("x", "s", "CoOp", "zero-shot"), _rows(holds))
    assert no_rows["verdict"] == "not tested" and "'CoOp'" in no_rows["reason"]


def test_margin_direction_and_filters():
    gains = {1: {1: 1.0, 16: 3.0}, 2: {1: 1.0, 16: 3.0}}
    at_16 = Claim("m", "s", "GDA", "zero-shot", where={"shots": 16}, margin=2.0)
    assert evaluate_claim(at_16, _rows(gains))["verdict"] == "holds"
    assert evaluate_claim(Claim("m", "s", "GDA", "zero-shot", where={"shots": 1}, margin=2.0),
                          _rows(gains))["verdict"] == "does not hold"
    lower = Claim("e", "error falls", "GDA", "zero-shot", where={"shots": 16}, higher_is_better=False)
    assert evaluate_claim(lower, _rows(gains))["effect"] == pytest.approx(-3.0)
    with pytest.raises(KeyError, match="'protocol'"):
        evaluate_claim(Claim("m", "s", "GDA", "zero-shot", where={"protocol": "x"}), _rows(gains))


def test_seedless_rows_give_an_exact_effect_and_preconditions_are_skipped_for_reported_rows():
    reported = [{"model": "RN50", "dataset": d, "method": "GDA", "metric": "accuracy", "shots": 16, "value": v}
                for d, v in (("pets", 88.81), ("eurosat", 86.12))]
    reported += [{"model": "RN50", "dataset": d, "method": "zero-shot", "metric": "accuracy", "value": v}
                 for d, v in (("pets", 85.77), ("eurosat", 37.56))]
    claim = Claim("b", "s", "GDA", "zero-shot", requires=("schedule",))
    result = evaluate_claim(claim, reported)
    assert result["verdict"] == "holds" and result["interval"] is None
    assert result["effect"] == pytest.approx(((88.81 - 85.77) + (86.12 - 37.56)) / 2)


def test_reported_effect_is_stated_beside_the_reproduced_one_and_toy_wording():
    gains = {1: {1: 1.0, 16: 1.0}, 2: {1: 1.5, 16: 1.5}}
    reported = [{"model": "RN50", "dataset": "pets", "method": m, "metric": "accuracy", "value": v}
                for m, v in (("GDA", 70.0), ("zero-shot", 60.0))]
    result = evaluate_claim(Claim("b", "s", "GDA", "zero-shot", paper_effect=10.0), _rows(gains),
                            reported=reported, toy=True)
    assert result["reported_effect"] == pytest.approx(10.0) and result["reported_verdict"] == "holds"
    assert "effect on the toy world" in result["sentence"] and "+10.00" in result["sentence"]


def test_a_claim_not_tested_offline_still_states_its_rule_on_the_reported_rows():
    reported = [{"model": "RN50", "dataset": "pets", "method": m, "metric": "accuracy", "value": v}
                for m, v in (("GDA", 70.0), ("zero-shot", 60.0))]
    claim = Claim("b", "s", "GDA", "zero-shot", requires=("schedule",))
    failed = [Precondition("schedule", "the full schedule", False, "the schedule was shortened")]
    for rows, preconditions in (([], None), (_rows({1: {1: 1.0, 16: 1.0}}), failed)):
        result = evaluate_claim(claim, rows, preconditions=preconditions, reported=reported, toy=True)
        assert result["verdict"] == "not tested"
        assert result["reported_effect"] == pytest.approx(10.0) and result["reported_verdict"] == "holds"
        assert "+10.00" in result["sentence"] and "(holds)" in result["sentence"]


def test_a_claim_measured_on_something_else_than_a_model_names_it_in_the_sentence():
    counts = [{"model": "list", "dataset": "survey", "method": m, "metric": "papers", "value": v}
              for m, v in (("2023", 74.0), ("2022", 16.0))]
    claim = Claim("grows", "s", "2023", "2022", metric="papers", unit="papers", measured_on="the survey's list")
    result = evaluate_claim(claim, counts, toy=True)
    assert "effect on the survey's list: holds" in result["sentence"]
    assert "toy world" not in result["sentence"]


def test_ids_must_be_unique_and_facts_carry_their_detail():
    with pytest.raises(ValueError, match="unique"):
        evaluate([CLAIM, CLAIM], _rows({1: {1: 1.0, 16: 1.0}}))
    assert fact("schedule", "official schedule", False, "0.25x epochs").detail == "0.25x epochs"
    assert at_least("p", "x", 5, 5).passed
