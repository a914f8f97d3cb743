from pathlib import Path

import pytest

from clipbook.batch import profiles

ROOT = Path(__file__).resolve().parents[2]


def test_every_paper_resolves_under_every_profile():
    for profile in profiles.PROFILES:
        planned = profiles.plan(ROOT, profile, None)
        with_paper_path = set(profiles.load_profile(ROOT, "paper"))
        assert set(planned) == (with_paper_path if profile == "rehearsal" else set(profiles.available_papers(ROOT)))
        assert all(params["profile"] == profile for params in planned.values())
    assert "calibration" not in profiles.plan(ROOT, "rehearsal", None)  # a workbook page has no paper path
    assert profiles.papers_without_path(ROOT, "rehearsal") == ["calibration"]
    with pytest.raises(profiles.BatchInputError, match="'calibration' cannot run under 'rehearsal'.*offline profile"):
        profiles.plan(ROOT, "rehearsal", ["calibration"])  # named on purpose: refused, not run on the toy suite


def test_unknown_paper_profile_parameter_and_type_are_refused_with_accepted_values():
    with pytest.raises(profiles.BatchInputError, match="unknown paper.*'nope'.*known papers: .*gda"):
        profiles.plan(ROOT, "offline", ["nope"])
    with pytest.raises(profiles.BatchInputError, match="unknown profile 'fast'.*offline, paper, rehearsal"):
        profiles.plan(ROOT, "fast", ["gda"])
    with pytest.raises(profiles.BatchInputError, match="gda: unknown parameter 'seed'; accepted: .*seeds"):
        profiles.plan(ROOT, "offline", ["gda"], {"seed": 1})
    with pytest.raises(profiles.BatchInputError, match="gda: parameter 'seeds' must be a non-empty list"):
        profiles.plan(ROOT, "offline", ["gda"], {"seeds": 1})
    with pytest.raises(profiles.BatchInputError, match="gda: parameter 'alpha_protocol' must be one of"):
        profiles.plan(ROOT, "offline", ["gda"], {"alpha_protocol": "test"})


def test_the_paper_profile_values_are_checked_against_each_notebooks_declarations(tmp_path):
    (tmp_path / "notebooks" / "profiles" / "paper").mkdir(parents=True)
    (tmp_path / "notebooks" / "gda.ipynb").write_bytes((ROOT / "notebooks" / "gda.ipynb").read_bytes())
    (tmp_path / "notebooks" / "profiles" / "paper" / "gda.yaml").write_text("shots: [0, 16]\n")
    with pytest.raises(profiles.BatchInputError, match="gda: parameter 'shots'.*item 0 \\(0\\) is < 1"):
        profiles.plan(tmp_path, "paper", ["gda"])


def test_job_resources_come_from_the_profiles_resources_file_with_per_paper_overrides(tmp_path):
    (tmp_path / "notebooks" / "profiles" / "paper").mkdir(parents=True)
    for slug in ("gda", "nola"):
        (tmp_path / "notebooks" / f"{slug}.ipynb").write_bytes((ROOT / "notebooks" / f"{slug}.ipynb").read_bytes())
    resources_file = tmp_path / "notebooks" / "profiles" / "paper" / "_resources.yaml"
    resources_file.write_text("default: {gpus: 1, cpus: 8, mem_gb: 64, time_min: 180}\n"
                              "papers:\n  nola: {time_min: 300}\n")
    resources = profiles.load_resources(tmp_path, "paper", ["gda", "nola"])
    assert resources["gda"] == profiles.JobResources(gpus=1, cpus=8, mem_gb=64, time_min=180)
    assert resources["nola"] == profiles.JobResources(gpus=1, cpus=8, mem_gb=64, time_min=300)
    assert set(profiles.plan(tmp_path, "paper", None)) == {"gda", "nola"}  # the file is not a paper's overrides
    assert profiles.load_resources(tmp_path, "offline", ["gda"]) == {"gda": profiles.JobResources()}

    for text, error in (("default: {gpu: 1}", "unknown resource 'gpu'; accepted: gpus, cpus, mem_gb, time_min"),
                        ("default: {cpus: 0}", "cpus must be a positive integer, got 0"),
                        ("default: {gpus: -1}", "gpus must be a non-negative integer, got -1"),
                        ("papers: {gdaa: {cpus: 2}}", "unknown paper\\(s\\) \\['gdaa'\\]"),
                        ("cpus: 2", "expected a mapping with the keys 'default' and 'papers'")):
        resources_file.write_text(text)
        with pytest.raises(profiles.BatchInputError, match=error):
            profiles.load_resources(tmp_path, "paper", ["gda"])


def test_the_shipped_resources_files_are_valid():
    for profile in profiles.PROFILES:
        resources = profiles.load_resources(ROOT, profile, profiles.available_papers(ROOT))
        assert all(r.gpus == (1 if profile == "paper" else 0) for r in resources.values())


def test_the_rehearsal_profile_is_the_paper_profile_with_its_caps_on_top(tmp_path):
    folders = {name: tmp_path / "notebooks" / "profiles" / name for name in ("paper", "rehearsal")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    (tmp_path / "notebooks" / "gda.ipynb").write_bytes((ROOT / "notebooks" / "gda.ipynb").read_bytes())
    (folders["paper"] / "gda.yaml").write_text("profile: paper\nmodels: [[RN50-quickgelu, openai]]\n"
                                               "datasets: [imagenet, eurosat]\nshots: [1, 16]\n")
    (folders["rehearsal"] / "gda.yaml").write_text("shots: [2]\n")
    assert profiles.plan(tmp_path, "rehearsal", ["gda"])["gda"] == {
        "profile": "rehearsal", "models": [["RN50-quickgelu", "openai"]], "datasets": ["imagenet", "eurosat"],
        "shots": [2]}
    (folders["rehearsal"] / "gda.yaml").write_text("shots: [0]\n")
    with pytest.raises(profiles.BatchInputError, match="gda: parameter 'shots'.*item 0 \\(0\\) is < 1"):
        profiles.plan(tmp_path, "rehearsal", ["gda"])
