"""The notebook contract, read without a kernel (CONTRIBUTING.md describes it for authors).

A notebook's data cells are tagged and hold only literals and clipbook declarations, so the batch and the
tests can read them before (or without) running the notebook:

- `parameters`: the literal defaults (the offline profile), overridden by papermill;
- `parameter-spec`: `SPEC = declare(...)`, the parameters' types, ranges, choices and needed artifacts;
- `reported` (optional): `REPORTED`, the paper's numbers as rows with their sources;
- `claims`: `CLAIMS`, the paper's claims as `clipbook.claims.Claim` specifications.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
from pathlib import Path

DATA_TAGS = ("parameters", "parameter-spec", "reported", "claims")
REQUIRED_TAGS = ("parameters", "parameter-spec", "claims")


class ContractError(ValueError):
    """A notebook that does not follow the contract (a missing or malformed tagged cell)."""


def _read(notebook: Path):
    import nbformat

    return nbformat.read(str(notebook), as_version=4)


def tagged_sources(notebook: Path) -> dict[str, str]:
    """{tag: source} of the data cells (each tag at most once)."""
    found: dict[str, str] = {}
    for cell in _read(notebook).cells:
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag in DATA_TAGS:
                if tag in found:
                    raise ContractError(f"{Path(notebook).name}: more than one cell tagged {tag!r}")
                found[tag] = cell.source
    missing = [tag for tag in REQUIRED_TAGS if tag not in found]
    if missing:
        raise ContractError(f"{Path(notebook).name}: no cell tagged {', '.join(map(repr, missing))} "
                            "(see CONTRIBUTING.md)")
    return found


def parameter_defaults(notebook: Path) -> dict:
    """The parameters cell's literal assignments (anything else there breaks papermill's overrides)."""
    source = tagged_sources(notebook)["parameters"]
    defaults = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ContractError(f"{Path(notebook).name}: the parameters cell holds only `name = literal` lines, "
                                f"not {ast.unparse(node)!r}")
        try:
            defaults[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError as err:
            raise ContractError(f"{Path(notebook).name}: parameter {node.targets[0].id!r} is not a literal "
                                f"({ast.unparse(node.value)})") from err
    return defaults


def definitions(notebook: Path, parameters: dict | None = None) -> dict:
    """Execute the data cells in a fresh namespace (after applying `parameters` over the defaults) and
    return it: SPEC, CLAIMS, REPORTED and the parameters."""
    sources = tagged_sources(notebook)
    namespace: dict = {}
    exec(compile(sources["parameters"], f"{notebook}:parameters", "exec"), namespace)
    namespace.update(parameters or {})
    for tag in ("parameter-spec", "reported", "claims"):
        if tag in sources:
            exec(compile(sources[tag], f"{notebook}:{tag}", "exec"), namespace)
    for name, tag in (("SPEC", "parameter-spec"), ("CLAIMS", "claims")):
        if name not in namespace:
            raise ContractError(f"{Path(notebook).name}: the cell tagged {tag!r} must define {name}")
    namespace.setdefault("REPORTED", [])
    return namespace


def notebook_spec(notebook: Path):
    """The notebook's `SPEC` (clipbook.batch.parameters.NotebookSpec)."""
    sources = tagged_sources(notebook)
    namespace: dict = {}
    exec(compile(sources["parameter-spec"], f"{notebook}:parameter-spec", "exec"), namespace)
    if "SPEC" not in namespace:
        raise ContractError(f"{Path(notebook).name}: the cell tagged 'parameter-spec' must define SPEC")
    return namespace["SPEC"]


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


def _imports(source: str, package: str | None = None) -> set[str]:
    """clipbook modules named by the import statements of `source` (relative imports resolved)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from clipbook import features`
    return {n for n in names if n.split(".")[0] == "clipbook"}


def library_modules(notebook: Path) -> list[str]:
    """Every clipbook module the notebook imports, transitively (parent packages included)."""
    source = "\n".join(cell.source for cell in _read(notebook).cells if cell.cell_type == "code")
    source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    todo, seen = set(_imports(source)) | {"clipbook"}, set()
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if path is None or name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.update(".".join(parts[:i]) for i in range(1, len(parts)))
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        todo.update(_imports(path.read_text(), package) - seen)
    return sorted(seen)


def library_hash(notebook: Path) -> str:
    """sha256 of the source of the clipbook modules the notebook imports (the resume key's library part)."""
    digest = hashlib.sha256()
    for name in library_modules(notebook):
        digest.update(name.encode() + _module_file(name).read_bytes())
    return digest.hexdigest()[:20]
