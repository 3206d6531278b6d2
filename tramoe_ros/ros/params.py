"""Declaring and validating node parameters, with one error that lists every problem.

Each node lists its parameters as `Param`s (name, default, description, optional range check). `declare_params`
declares them, accepts the values a YAML params file naturally produces (an integer where a float is expected,
`[]` for an empty list), and raises `ParameterError` naming the node, each bad parameter, its value and what
is expected.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from tramoe_ros.paths import share_dir
from tramoe_ros.ros.errors import ParameterError, bounded

# Parameter kinds and what a value of each must be, for error messages.
KINDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string",
         "str[]": "a list of strings", "float[]": "a list of numbers", "int[]": "a list of integers"}

Check = Callable[[Any], "str | None"]  # returns what is wrong with a value, or None


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    check: Check | None = None
    kind: str = ""  # one of KINDS; inferred from `default` when empty (give it for an empty-list default)

    def resolved_kind(self) -> str:
        if self.kind:
            return self.kind
        for kind, tp in (("bool", bool), ("int", int), ("float", float), ("str", str)):
            if type(self.default) is tp:
                return kind
        if isinstance(self.default, (list, tuple)) and self.default:
            return "str[]" if isinstance(self.default[0], str) else "float[]"
        raise TypeError(f"parameter {self.name!r}: cannot infer the kind of default {self.default!r}; give kind=")


def positive(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def non_negative(value: float) -> str | None:
    return None if value >= 0 else "must be >= 0"


def not_empty(value: Any) -> str | None:
    return None if len(value) else "must not be empty"


def one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"
    return check


def coerce(kind: str, value: Any) -> Any:
    """`value` as a `kind` value; raises ValueError when it is not one."""
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "str" and isinstance(value, str):
        return value
    if kind.endswith("[]"):
        if value is None:  # a YAML `[]` arrives as an unset parameter
            return []
        if isinstance(value, (list, tuple)):
            items = [coerce(kind[:-2], v) for v in value]
            return items
    raise ValueError(f"must be {KINDS[kind]}")


def declare_params(node: Node, params: list[Param]) -> dict[str, Any]:
    """Declare `params` on `node` and return their validated values by name.

    Raises:
        ParameterError: listing every invalid parameter
    """
    values, errors = {}, []
    for p in params:
        kind = p.resolved_kind()
        descriptor = ParameterDescriptor(description=p.description, dynamic_typing=True)
        value = node.declare_parameter(p.name, p.default, descriptor).value
        try:
            value = coerce(kind, value)
        except ValueError as e:
            errors.append(f"{p.name}: {e}, got {bounded(repr(value))}")
            continue
        problem = p.check(value) if p.check else None
        if problem:
            errors.append(f"{p.name}: {problem}, got {bounded(repr(value))}")
            continue
        values[p.name] = value
    if errors:
        raise ParameterError(f"{node.get_name()}: invalid parameters:\n  " + "\n  ".join(errors))
    return values


def allow_runtime_changes(node: Node, params: list[Param], handlers: Mapping[str, Callable[[Any], None]]) -> None:
    """Let the parameters in `handlers` change at runtime (validated, then passed to their handler); refuse
    changes to every other parameter, which are only read at start."""
    by_name = {p.name: p for p in params}

    def on_set(changes: list[Parameter]) -> SetParametersResult:
        accepted = []
        for change in changes:
            if change.name not in handlers:
                return SetParametersResult(successful=False,
                                           reason=f"{change.name} is read at start only; restart the node")
            spec = by_name[change.name]
            try:
                value = coerce(spec.resolved_kind(), change.value)
            except ValueError as e:
                return SetParametersResult(successful=False, reason=f"{change.name}: {e}")
            problem = spec.check(value) if spec.check else None
            if problem:
                return SetParametersResult(successful=False, reason=f"{change.name}: {problem}")
            accepted.append((handlers[change.name], value))
        for handler, value in accepted:
            handler(value)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)


def resolve_path(value: str) -> Path:
    """A path parameter: absolute as given; relative to the working directory when it exists there, else to
    the package's share folder (where shipped models and configs live on a colcon install)."""
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return share_dir() / path
