"""`invoke new <slug>`: a paper's notebook from notebooks/_template.py, and its paper-profile YAML."""
from __future__ import annotations

import re
from pathlib import Path

TEMPLATE = "_template.py"
SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def new_paper(root: Path, slug: str, *, title: str) -> list[Path]:
    """Write notebooks/<slug>.ipynb and its paired .py from the template, and profiles/paper/<slug>.yaml.

    Raises:
        ValueError: a malformed slug, or a paper that already has a notebook.
    """
    import jupytext

    if not SLUG.fullmatch(slug):
        raise ValueError(f"slug {slug!r} must be lowercase letters and digits separated by single dashes")
    notebooks = Path(root) / "notebooks"
    target = notebooks / f"{slug}.ipynb"
    if target.exists() or target.with_suffix(".py").exists():
        raise ValueError(f"{target.relative_to(root)} already exists")
    source = (notebooks / TEMPLATE).read_text().replace("{{slug}}", slug).replace("{{title}}", title)
    notebook = jupytext.reads(source, fmt="py:percent")
    jupytext.write(notebook, target)
    jupytext.write(notebook, target.with_suffix(".py"), fmt="py:percent")
    profile = notebooks / "profiles" / "paper" / f"{slug}.yaml"
    profile.write_text(
        f"# {slug} under the paper profile: `invoke batch --profile paper --papers {slug}` (on a GPU machine).\n"
        "# Overrides of the notebook's parameters: the paper's checkpoints and datasets.\n"
        "profile: paper\n"
        'models: [["RN50-quickgelu", "openai"]]\n'
        "datasets: [eurosat]\n")
    return [target, target.with_suffix(".py"), profile]
