import pytest

from clipbook.batch.parameters import (Bool, Float, Int, ListOf, Mapping, ParameterError, Str, declare,
                                       parameter_values)

SPEC = declare("profile", "models", "datasets", "seeds", "shots", "device",
               alpha_grid=ListOf(Float(minimum=0)), protocol=Str(["full-val", "few-shot-val"]),
               passes=Int(minimum=1), ablate=Bool(), scale=ListOf(Float(0, 1), length=2), extra=Mapping())
GOOD = {"profile": "offline", "models": [["clipbook-tiny-rn", "toyworld"]], "datasets": ["toy"], "seeds": [1, 2],
        "shots": [1, 16], "device": "auto", "alpha_grid": [0.1, 1], "protocol": "full-val", "passes": 10,
        "ablate": True, "scale": [0.5, 1.0], "extra": {}}

BAD = [  # (parameter, value, what the one-line message must say)
    ("seeds", "oops", "parameter 'seeds' must be a non-empty list of integer ≥ 0; got str 'oops'"),
    ("seeds", [-1], "item 0 (-1) is < 0"),
    ("seeds", [], "(empty)"),
    ("seeds", [True], "not an integer"),
    ("shots", [0], "< 1"),
    ("profile", "fast", "one of 'offline', 'paper'"),
    ("device", "gpu", "not 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ("datasets", ["imagenette"], "unknown; known datasets: "),
    ("models", ["RN50"], "not an [architecture, pretrained] pair"),
    ("alpha_grid", [0.1, float("nan")], "not a finite number"),
    ("protocol", "val", "one of 'full-val', 'few-shot-val'"),
    ("passes", 2.5, "not an integer"),
    ("ablate", "yes", "not a boolean"),
    ("scale", [0.5], "has 1 items, not 2"),
    ("scale", [0.5, 2], "> 1"),
    ("extra", [], "not a mapping"),
]


def test_good_values_pass_and_come_back_in_declaration_order():
    assert list(SPEC.check(dict(reversed(list(GOOD.items()))))) == list(SPEC.parameters)


@pytest.mark.parametrize("name,value,message", BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_bad_values_are_refused_with_one_line_naming_value_and_accepted_values(name, value, message):
    with pytest.raises(ParameterError) as error:
        SPEC.check({**GOOD, name: value})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unknown_and_missing_parameters():
    with pytest.raises(ParameterError, match="unknown parameter 'seed'; accepted: profile, models"):
        SPEC.check({**GOOD, "seed": 1})
    with pytest.raises(ParameterError, match="'shots' declared but not set"):
        SPEC.check({k: v for k, v in GOOD.items() if k != "shots"})
    SPEC.check({"seeds": [3]}, complete=False)


def test_a_name_injected_by_papermill_is_seen_as_a_parameter_but_an_imported_constant_is_not():
    injected = '# Parameters\nseed = 1\nseeds = [3]\n'
    namespace = {**GOOD, "seeds": [3], "seed": 1, "In": ["", "import numpy as np", injected], "Out": {},
                 "SMALL_WORK_THREADS": 1, "_": 3, "SPEC": SPEC}
    assert parameter_values(SPEC, namespace) == {**GOOD, "seeds": [3], "seed": 1}
    assert parameter_values(SPEC, {**GOOD, "SMALL_WORK_THREADS": 1}) == GOOD


def test_declarations_are_checked_when_written():
    with pytest.raises(ValueError, match="not standard"):
        declare("profile", "seed")
    narrowed = declare("profile", datasets=ListOf(Str(["toy", "toy-noise"])))
    with pytest.raises(ParameterError, match="one of 'toy', 'toy-noise'"):
        narrowed.check({"profile": "offline", "datasets": ["eurosat"]})
    with pytest.raises(ValueError, match="unknown artifacts"):
        declare("profile", needs=("tiny-dino",))
    with pytest.raises(TypeError, match="must be declared"):
        declare("profile", epochs_scale=0.25)
