"""Typed configs: one frozen dataclass per component, each field with its help text, read from plain data.

    @dataclass(frozen=True)
    class RecordConfig:
        steps: int = option(1000, "rollout steps per seed")

``option`` keeps the help in the field's metadata, where the CLI's flags (``l2o.cli.options``) and the
docs read it. ``from_dict(cls, data)`` builds a config from a JSON/YAML mapping — nested configs,
tuples, optional and literal fields — and names the field at fault when a value does not fit;
``to_dict`` is its inverse (what a manifest or a Ray worker receives). Unknown keys are an error.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def option(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = dataclasses.MISSING,
           flag: bool = True) -> Any:
    """A dataclass field with help text; ``flag=False`` keeps it off generated command lines."""
    meta = {"help": help, "flag": flag}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def help_of(field: dataclasses.Field) -> str:
    return field.metadata.get("help", "")


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise ValueError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping of {tp.__name__} settings, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin is tuple:
        if isinstance(value, str):  # "100,200,500" on a command line; "a,b;c,d" for a tuple of tuples
            nested = typing.get_origin(args[0]) is tuple if args else False
            value = [v.strip() for v in value.split(";" if nested else ",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (list,):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(args[0] if args else Any, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, str):
            value = _number(value, int, where)
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            value = _number(value, float, where)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{where}: expected a finite number, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected text, got {type(value).__name__}")
        return value
    raise TypeError(f"{where}: cannot read a value of type {tp}")


def _number(text: str, cast, where: str):
    try:
        return cast(text.strip())
    except ValueError:
        raise ValueError(f"{where}: expected {'an integer' if cast is int else 'a number'}, got {text!r}") from None


def from_dict(cls: type[T], data: dict[str, Any], where: str | None = None) -> T:
    """``cls`` from a mapping, recursing into nested configs; values are checked against the field types
    and the class's own validation runs. Errors are ``ValueError`` naming the field (``a.b.c``)."""
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown}; expected among {sorted(fields)}")
    kwargs = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from err


def to_dict(config: Any) -> dict[str, Any]:
    """The JSON-ready mapping of a config (tuples become lists)."""
    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid onto ``base``, recursively for nested mappings."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def replace(config: T, **changes: Any) -> T:
    """``dataclasses.replace`` with nested changes given as ``section={...}`` mappings."""
    return from_dict(type(config), merge(to_dict(config), to_dict(changes)))


def read_config_file(path: str | None) -> dict[str, Any]:
    """A JSON or YAML mapping from a file (empty without a path)."""
    import json
    from pathlib import Path

    if not path:
        return {}
    text = Path(path).read_text()
    if str(path).endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config must be a mapping")
    return data
