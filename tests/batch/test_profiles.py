from pathlib import Path

import pytest

from clipbook.batch import profiles

ROOT = Path(__file__).resolve().parents[2]


def test_every_paper_resolves_under_every_profile():
    for profile in profiles.PROFILES:
        planned = profiles.plan(ROOT, profile, None)
        assert set(planned) == set(profiles.available_papers(ROOT))
        assert all(params["profile"] == profile for params in planned.values())


def test_unknown_paper_profile_parameter_and_type_are_refused_with_accepted_values():
    with pytest.raises(profiles.BatchInputError, match="unknown paper.*'nope'.*known papers: .*gda"):
        profiles.plan(ROOT, "offline", ["nope"])
    with pytest.raises(profiles.BatchInputError, match="unknown profile 'fast'.*offline, paper"):
        profiles.plan(ROOT, "fast", ["gda"])
    with pytest.raises(profiles.BatchInputError, match="unknown parameter 'seed'.*accepted parameters: .*seeds"):
        profiles.plan(ROOT, "offline", ["gda"], {"seed": 1})
    with pytest.raises(profiles.BatchInputError, match="'seeds' must be of type list"):
        profiles.plan(ROOT, "offline", ["gda"], {"seeds": 1})


def test_type_checks_use_the_annotation_or_the_default():
    declared = {"n": {"inferred_type_name": "int", "default": "1"}, "x": {"inferred_type_name": "None", "default": "1.0"},
                "flag": {"inferred_type_name": "None", "default": "True"}}
    profiles.check_parameters("p", declared, {"n": 3, "x": 2, "flag": False})
    for bad in ({"n": 2.5}, {"n": True}, {"x": "1"}, {"flag": 1}):
        with pytest.raises(profiles.BatchInputError):
            profiles.check_parameters("p", declared, bad)
