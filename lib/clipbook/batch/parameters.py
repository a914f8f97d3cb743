"""Declared notebook parameters: types, ranges and choices.

Every notebook declares its parameters once, in the cell tagged `parameter-spec` right after the
`parameters` cell:

    SPEC = declare("profile", "models", "datasets", "seeds", "shots", "device",
                   alpha_grid=ListOf(Float(minimum=0)), needs=("tiny-clip",))

The strings pull the standard declarations below (the same name means the same thing in every notebook);
keywords declare the paper's own parameters, or narrow a standard one (`datasets=ListOf(Str([...]))`). The notebook checks its values against SPEC in its next cell
(`clipbook.start`), so plain papermill gets the same one-line error as `invoke batch`, which checks the
same SPEC before any kernel starts. `needs` names the shared artifacts the batch builds first.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

PROFILES = ("offline", "paper", "rehearsal")
# A profile built on another: its overrides are the base profile's YAML, then its own YAML on top (caps).
PROFILE_BASES = {"rehearsal": "paper"}
ARTIFACTS = ("tiny-clip", "tiny-clip-vit", "tiny-ssl", "tiny-supervised")  # batch.runner.SHARED_ARTIFACTS builds them


class ParameterError(ValueError):
    """A parameter value that does not match its declaration (a one-line message naming both)."""


def _type_name(value: Any) -> str:
    return type(value).__name__


@dataclass(frozen=True)
class Param:
    """One declared parameter. `check(name, value)` raises ParameterError or returns None."""
    kind: str
    help: str = ""
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    item: "Param | None" = None
    min_length: int = 0
    length: int | None = None
    optional: bool = False
    validator: Callable[[Any], str | None] | None = field(default=None, compare=False)

    def describe(self) -> str:
        if self.kind == "list":
            size = f"exactly {self.length} " if self.length is not None else (
                "a non-empty " if self.min_length else "")
            text = f"{size}list of {self.item.describe() if self.item else 'values'}"
        elif self.choices is not None:
            text = "one of " + ", ".join(map(repr, self.choices))
        else:
            text = {"int": "integer", "float": "number", "str": "string", "bool": "boolean (true/false)",
                    "dict": "mapping", "any": "value", "model": "[architecture, pretrained] pair",
                    "dataset": "dataset name"}.get(self.kind, self.kind)
            if self.minimum is not None:
                text += f" {'>' if self.exclusive_minimum else '≥'} {self.minimum:g}"
            if self.maximum is not None:
                text += f" ≤ {self.maximum:g}"
        return text + (" or null" if self.optional else "")

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value`, or None."""
        if value is None and self.optional:
            return None
        if self.kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            return "not an integer"
        if self.kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                     or not math.isfinite(value)):
            return "not a finite number"
        if self.kind in ("str", "dataset") and not isinstance(value, str):
            return "not a string"
        if self.kind == "bool" and not isinstance(value, bool):
            return "not a boolean"
        if self.kind == "dict" and not isinstance(value, dict):
            return "not a mapping"
        if self.kind == "model":
            if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
                    and (value[1] is None or isinstance(value[1], str))):
                return "not an [architecture, pretrained] pair"
        if self.kind == "list":
            if not isinstance(value, list):
                return "not a list"
            if self.length is not None and len(value) != self.length:
                return f"has {len(value)} items, not {self.length}"
            if len(value) < self.min_length:
                return "empty" if not value else f"has fewer than {self.min_length} items"
            if self.item is not None:
                for position, element in enumerate(value):
                    issue = self.item.problem(element)
                    if issue:
                        return f"item {position} ({element!r}) is {issue}"
        if self.choices is not None and value not in self.choices:
            return "not an accepted value"
        if self.minimum is not None and isinstance(value, (int, float)):
            if value < self.minimum or (self.exclusive_minimum and value == self.minimum):
                return f"{'≤' if self.exclusive_minimum else '<'} {self.minimum:g}"
        if self.maximum is not None and isinstance(value, (int, float)) and value > self.maximum:
            return f"> {self.maximum:g}"
        if self.validator is not None:
            return self.validator(value)
        return None

    def check(self, name: str, value: Any) -> None:
        issue = self.problem(value)
        if issue:
            raise ParameterError(f"parameter {name!r} must be {self.describe()}; got {_type_name(value)} "
                                 f"{value!r} ({issue})")


def Int(minimum: int | None = None, maximum: int | None = None, *, help: str = "", optional: bool = False) -> Param:
    return Param("int", help=help, minimum=minimum, maximum=maximum, optional=optional)


def Float(minimum: float | None = None, maximum: float | None = None, *, exclusive_minimum: bool = False,
          help: str = "", optional: bool = False) -> Param:
    return Param("float", help=help, minimum=minimum, maximum=maximum, exclusive_minimum=exclusive_minimum,
                 optional=optional)


def Str(choices: tuple | list | None = None, *, help: str = "", optional: bool = False,
        validator: Callable[[Any], str | None] | None = None) -> Param:
    return Param("str", help=help, choices=tuple(choices) if choices is not None else None, optional=optional,
                 validator=validator)


def Bool(*, help: str = "") -> Param:
    return Param("bool", help=help)


def Mapping(*, help: str = "", validator: Callable[[Any], str | None] | None = None) -> Param:
    return Param("dict", help=help, validator=validator)


def ListOf(item: Param, *, min_length: int = 1, length: int | None = None, help: str = "") -> Param:
    return Param("list", help=help, item=item, min_length=min_length, length=length)


def _known_dataset(name: str) -> str | None:
    from clipbook.data import registry

    if name not in registry.DATASETS:
        return f"unknown; known datasets: {', '.join(sorted(registry.DATASETS))}"
    return None


def _device(value: str) -> str | None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        return "not 'auto', 'cpu', 'cuda' or 'cuda:N'"
    return None


def Dataset(*, help: str = "") -> Param:
    """A dataset registry name (checked against clipbook.data.registry)."""
    return Param("dataset", help=help, validator=_known_dataset)


def Model(*, help: str = "") -> Param:
    return Param("model", help=help)


# The names every notebook shares, declared once. A notebook pulls them by name in `declare`.
STANDARD: dict[str, Param] = {
    "profile": Str(PROFILES, help="offline (toy world, CPU), paper (real weights and data, GPU) or rehearsal (the "
                                   "paper path with random weights and generated data in the real layouts)"),
    "models": ListOf(Model(), help="[open_clip architecture, pretrained tag] pairs"),
    "datasets": ListOf(Dataset(), help="dataset registry names; the first is the headline"),
    "seeds": ListOf(Int(minimum=0), help="random seeds (CoOp protocol: 1, 2, 3)"),
    "shots": ListOf(Int(minimum=1), help="labelled images per class"),
    "learning_rate": Float(minimum=0, exclusive_minimum=True, help="optimiser learning rate"),
    "epochs": Int(minimum=1, help="training epochs"),
    "device": Str(validator=_device, help="auto, cpu, cuda or cuda:N"),
}


@dataclass(frozen=True)
class NotebookSpec:
    parameters: dict[str, Param]
    needs: tuple[str, ...] = ("tiny-clip",)

    def check(self, values: dict[str, Any], *, complete: bool = True) -> dict[str, Any]:
        """Check values against the declarations; `complete`: every declared parameter must be present.
        Returns the values in declaration order."""
        unknown = sorted(set(values) - set(self.parameters))
        if unknown:
            raise ParameterError(f"unknown parameter{'s' if len(unknown) > 1 else ''} "
                                 f"{', '.join(map(repr, unknown))}; accepted: {', '.join(self.parameters)}")
        missing = [name for name in self.parameters if name not in values]
        if complete and missing:
            raise ParameterError(f"parameter{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                                 "declared but not set in the parameters cell")
        for name, value in values.items():
            self.parameters[name].check(name, value)
        return {name: values[name] for name in self.parameters if name in values}


def declare(*standard: str, needs: tuple[str, ...] | list[str] = ("tiny-clip",), **parameters: Param) -> NotebookSpec:
    """A notebook's parameter declarations: standard names plus the paper's own (see module docstring)."""
    unknown = [name for name in standard if name not in STANDARD]
    if unknown:
        raise ValueError(f"not standard parameters: {unknown}; standard: {', '.join(STANDARD)}")
    bad_needs = [need for need in needs if need not in ARTIFACTS]
    if bad_needs:
        raise ValueError(f"unknown artifacts {bad_needs}; known: {', '.join(ARTIFACTS)}")
    for name, param in parameters.items():
        if not isinstance(param, Param):
            raise TypeError(f"parameter {name!r} must be declared with Int/Float/Str/Bool/ListOf/..., "
                            f"got {param!r}")
    declared = {name: STANDARD[name] for name in standard}
    declared.update(parameters)  # a keyword may narrow a standard name (e.g. the datasets a method supports)
    if "profile" not in declared:
        raise ValueError("every notebook declares 'profile'")
    return NotebookSpec(parameters=declared, needs=tuple(needs))


# papermill's injected cell starts with this comment (papermill.translators, `codify(..., comment="Parameters")`)
INJECTED_CELL_HEADER = "# Parameters"


def _injected_names(namespace: dict) -> set[str]:
    """Names assigned by papermill's injected-parameters cell, read from IPython's input history `In`."""
    import ast

    names: set[str] = set()
    for source in namespace.get("In") or []:
        if isinstance(source, str) and source.lstrip().startswith(INJECTED_CELL_HEADER):
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            names.update(target.id for node in tree.body if isinstance(node, ast.Assign)
                         for target in node.targets if isinstance(target, ast.Name))
    return names


def parameter_values(spec: NotebookSpec, namespace: dict) -> dict:
    """The notebook's parameter values from its global namespace, plus any name papermill injected that the
    notebook does not declare (a misspelt `-p seed 1`), so that `check` refuses it."""
    values = {name: namespace[name] for name in spec.parameters if name in namespace}
    for name in _injected_names(namespace) - set(spec.parameters):
        values[name] = namespace.get(name)
    return values
