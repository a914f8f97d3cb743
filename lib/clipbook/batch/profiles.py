"""Profiles and parameter validation, done before any kernel starts.

A profile is a folder `notebooks/profiles/<profile>/` of flat YAML files, `<slug>.yaml` holding the
parameter overrides that paper's notebook gets under that profile (so plain papermill can use them
too: `papermill notebooks/gda.ipynb out.ipynb -f notebooks/profiles/paper/gda.yaml`). Every notebook declares its parameters (with their
defaults, the offline profile) in the cell tagged `parameters`; papermill reads them back, so an
override naming an unknown parameter or of the wrong type is refused with the accepted values.
"""
from __future__ import annotations

import ast
from pathlib import Path

import yaml

PROFILES = ("offline", "paper")


class BatchInputError(ValueError):
    """Bad batch input: unknown paper, profile or parameter, or a parameter of the wrong type."""


def notebooks_dir(root: Path) -> Path:
    return root / "notebooks"


def available_papers(root: Path) -> list[str]:
    return sorted(p.stem for p in notebooks_dir(root).glob("*.ipynb"))


def notebook_parameters(notebook: Path) -> dict[str, dict]:
    """{name: {"default": ..., "inferred_type_name": ...}} from the notebook's parameters cell."""
    from papermill.inspection import inspect_notebook

    return inspect_notebook(str(notebook))


def load_profile(root: Path, profile: str) -> dict[str, dict]:
    if profile not in PROFILES:
        raise BatchInputError(f"unknown profile {profile!r}; accepted profiles: {', '.join(PROFILES)}")
    overrides = {}
    for path in sorted((notebooks_dir(root) / "profiles" / profile).glob("*.yaml")):
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise BatchInputError(f"{path}: expected a mapping of parameter names to values")
        if values.get("profile", profile) != profile:
            raise BatchInputError(f"{path}: sets profile {values['profile']!r} inside the {profile!r} profile")
        overrides[path.stem] = values
    return overrides


_TYPE_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "dict": lambda v: isinstance(v, dict),
}


def declared_type(spec: dict) -> str | None:
    """The parameter's type: its annotation if papermill found one, else the type of its default."""
    if spec.get("inferred_type_name") not in (None, "None"):
        return spec["inferred_type_name"]
    try:
        return type(ast.literal_eval(spec["default"])).__name__
    except (ValueError, SyntaxError):
        return None  # an expression default: nothing to check against


def check_parameters(slug: str, declared: dict[str, dict], values: dict) -> None:
    for name, value in values.items():
        if name not in declared:
            raise BatchInputError(
                f"{slug}: unknown parameter {name!r}; accepted parameters: {', '.join(sorted(declared))}")
        type_name = declared_type(declared[name])
        check = _TYPE_CHECKS.get(type_name)
        if check and not check(value):
            raise BatchInputError(
                f"{slug}: parameter {name!r} must be of type {type_name} (default "
                f"{declared[name]['default']}), got {type(value).__name__} {value!r}")


def plan(root: Path, profile: str, papers: list[str] | None, extra: dict | None = None) -> dict[str, dict]:
    """Resolve and validate the parameters of every selected paper: {slug: parameters}."""
    known = available_papers(root)
    selected = papers or known
    unknown = [p for p in selected if p not in known]
    if unknown:
        raise BatchInputError(f"unknown paper(s) {', '.join(map(repr, unknown))}; known papers: {', '.join(known)}")
    overrides = load_profile(root, profile)
    stray = [slug for slug in overrides if slug not in known]
    if stray:
        raise BatchInputError(f"profile {profile!r} names unknown paper(s) {stray}; known papers: {', '.join(known)}")
    resolved = {}
    for slug in selected:
        declared = notebook_parameters(notebooks_dir(root) / f"{slug}.ipynb")
        if "profile" not in declared:
            raise BatchInputError(f"{slug}: its parameters cell must declare `profile`")
        values = {**(overrides.get(slug) or {}), **(extra or {}), "profile": profile}
        check_parameters(slug, declared, values)
        resolved[slug] = values
    return resolved
