"""Profiles and parameter validation, done before any kernel starts.

A profile is a folder `notebooks/profiles/<profile>/` of flat YAML files, `<slug>.yaml` holding the
parameter overrides that paper's notebook gets under that profile (so plain papermill can use them
too: `papermill notebooks/gda.ipynb out.ipynb -f notebooks/profiles/paper/gda.yaml`). Every notebook declares
its parameters' defaults (the offline profile) in the cell tagged `parameters` and their types, ranges and
choices in the cell tagged `parameter-spec`; `plan` checks every override against that declaration before
any kernel starts, with the same one-line errors the notebook itself raises.

A profile folder may also hold `_resources.yaml`, what one paper's cluster job asks for (GPUs, CPUs, memory,
time limit; `load_resources`). Files starting with `_` are not papers.

A profile may build on another (`PROFILE_BASES`): the rehearsal profile's overrides for a paper are its
paper-profile YAML with `notebooks/profiles/rehearsal/<slug>.yaml` (caps on epochs, iterations, shots,
datasets) applied on top, so the rehearsal follows every change to the paper profile.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import yaml

from clipbook.batch import contract
from clipbook.batch.parameters import PROFILE_BASES, PROFILES, ParameterError


class BatchInputError(ValueError):
    """Bad batch input: unknown paper, profile or parameter, or a parameter of the wrong type."""


def notebooks_dir(root: Path) -> Path:
    return root / "notebooks"


def available_papers(root: Path) -> list[str]:
    return sorted(p.stem for p in notebooks_dir(root).glob("*.ipynb") if not p.stem.startswith("_"))


def _read_profile_folder(root: Path, profile: str) -> dict[str, dict]:
    overrides = {}
    for path in sorted((notebooks_dir(root) / "profiles" / profile).glob("*.yaml")):
        if path.stem.startswith("_"):
            continue
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise BatchInputError(f"{path}: expected a mapping of parameter names to values")
        if values.get("profile", profile) != profile:
            raise BatchInputError(f"{path}: sets profile {values['profile']!r} inside the {profile!r} profile")
        overrides[path.stem] = values
    return overrides


def load_profile(root: Path, profile: str) -> dict[str, dict]:
    """{slug: overrides} of a profile; a profile with a base (`PROFILE_BASES`) is its base's overrides with its
    own YAML on top, `profile` set to itself."""
    if profile not in PROFILES:
        raise BatchInputError(f"unknown profile {profile!r}; accepted profiles: {', '.join(PROFILES)}")
    own = _read_profile_folder(root, profile)
    if profile not in PROFILE_BASES:
        return own
    base = load_profile(root, PROFILE_BASES[profile])
    return {slug: {**base.get(slug, {}), **own.get(slug, {}), "profile": profile} for slug in sorted({*base, *own})}


def papers_without_path(root: Path, profile: str) -> list[str]:
    """Notebooks a profile built on another (`PROFILE_BASES`) does not run: those with no YAML in the base
    profile (workbook pages like calibration, which have no paper path). Empty for a profile without a base."""
    if profile not in PROFILE_BASES:
        return []
    base = load_profile(root, PROFILE_BASES[profile])
    return [slug for slug in available_papers(root) if slug not in base]


def plan(root: Path, profile: str, papers: list[str] | None, extra: dict | None = None) -> dict[str, dict]:
    """Resolve and validate the parameters of every selected paper: {slug: parameters}."""
    known = available_papers(root)
    overrides = load_profile(root, profile)
    # a profile built on another covers the notebooks that have a path there (no workbook page has a paper path)
    selected = papers or ([slug for slug in known if slug in overrides] if profile in PROFILE_BASES else known)
    unknown = [p for p in selected if p not in known]
    if unknown:
        raise BatchInputError(f"unknown paper(s) {', '.join(map(repr, unknown))}; known papers: {', '.join(known)}")
    pathless = [slug for slug in selected if slug in papers_without_path(root, profile)]
    if pathless:
        base = PROFILE_BASES[profile]
        raise BatchInputError(
            f"{', '.join(map(repr, pathless))} cannot run under {profile!r}: it builds on the {base!r} profile and "
            f"there is no notebooks/profiles/{base}/<slug>.yaml for them (a workbook page such as calibration has no "
            f"{base} path to run); run them under the offline profile")
    stray = [slug for slug in overrides if slug not in known]
    if stray:
        raise BatchInputError(f"profile {profile!r} names unknown paper(s) {stray}; known papers: {', '.join(known)}")
    resolved = {}
    for slug in selected:
        notebook = notebooks_dir(root) / f"{slug}.ipynb"
        try:
            spec = contract.notebook_spec(notebook)
            defaults = contract.parameter_defaults(notebook)
            values = {**(overrides.get(slug) or {}), **(extra or {}), "profile": profile}
            spec.check({**defaults, **values})
        except (ParameterError, contract.ContractError) as err:
            raise BatchInputError(f"{slug}: {err}") from None
        resolved[slug] = values
    return resolved


RESOURCES_FILE = "_resources.yaml"


@dataclass(frozen=True)
class JobResources:
    """What one paper's cluster job asks for. The defaults fit an offline notebook (CPU, minutes)."""
    gpus: int = 0
    cpus: int = 1
    mem_gb: int = 4
    time_min: int = 30


def load_resources(root: Path, profile: str, papers: list[str]) -> dict[str, JobResources]:
    """Each paper's job resources under a profile: {slug: JobResources}, from
    `notebooks/profiles/<profile>/_resources.yaml`:

        default: {gpus: 1, cpus: 8, mem_gb: 64, time_min: 180}
        papers:
          nola: {time_min: 240}     # overrides default, key by key

    A profile without the file gets JobResources()'s defaults.

    Raises:
        BatchInputError: a key that is not a resource, a value that is not a positive integer (gpus may be 0),
            or a paper that has no notebook.
    """
    path = notebooks_dir(root) / "profiles" / profile / RESOURCES_FILE
    data = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    if not isinstance(data, dict) or set(data) - {"default", "papers"}:
        raise BatchInputError(f"{path}: expected a mapping with the keys 'default' and 'papers'")
    default = _resources(JobResources(), data.get("default") or {}, f"{path}: default")
    per_paper = data.get("papers") or {}
    known = available_papers(root)
    stray = [slug for slug in per_paper if slug not in known]
    if stray:
        raise BatchInputError(f"{path}: unknown paper(s) {stray}; known papers: {', '.join(known)}")
    return {slug: _resources(default, per_paper.get(slug) or {}, f"{path}: {slug}") for slug in papers}


def _resources(base: JobResources, values: dict, where: str) -> JobResources:
    names = [field.name for field in fields(JobResources)]
    if not isinstance(values, dict):
        raise BatchInputError(f"{where}: expected a mapping of {', '.join(names)}")
    for name, value in values.items():
        if name not in names:
            raise BatchInputError(f"{where}: unknown resource {name!r}; accepted: {', '.join(names)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "gpus" else 1):
            least = "a non-negative" if name == "gpus" else "a positive"
            raise BatchInputError(f"{where}: {name} must be {least} integer, got {value!r}")
    return replace(base, **values)
