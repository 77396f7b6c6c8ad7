"""Command-line flags generated from the typed configs, and the helpers every command shares.

``add_config_flags(parser, Config, prefix)`` adds one flag per field (``--epoch-len``, or
``--search.max-complexity`` under a prefix), its help the field's help and default; nested configs get
dotted flags. ``config_from_args`` lays the flags that were given over a base (the defaults, or a
``--config`` file) and builds the config through ``l2o.config.from_dict``, which converts and checks
every value (``--curriculum 100,200``; ``--tanh``/``--no-tanh``).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from l2o.config import from_dict, help_of, merge

DTYPES = ("float32", "float64")


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ";".join(_show(v) for v in value) if value and isinstance(value[0], (list, tuple)) else \
            ",".join(map(str, value)) or "none"
    return "unset" if value is None else str(value)


def _is_bool(tp) -> bool:
    return tp is bool or (typing.get_origin(tp) in (typing.Union, types.UnionType)
                          and set(typing.get_args(tp)) == {bool, type(None)})


def add_config_flags(parser: argparse.ArgumentParser, cls: type, prefix: str = "", skip: tuple[str, ...] = (),
                     defaults: Any = None) -> None:
    """One flag per field of ``cls`` (recursing into nested configs); ``skip`` names fields left out."""
    defaults = defaults if defaults is not None else cls()
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip or not field.init or not field.metadata.get("flag", True):
            continue
        tp, name = hints[field.name], prefix + field.name
        default = getattr(defaults, field.name)
        if dataclasses.is_dataclass(tp):
            add_config_flags(parser, tp, f"{name}.", defaults=default)
            continue
        flag = "--" + name.replace("_", "-")
        text = f"{help_of(field)} (default: {_show(default)})".replace("%", "%%")
        dest = name.replace(".", "__")
        if _is_bool(tp):
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif typing.get_origin(tp) is dict or tp is dict:
            parser.add_argument(flag, dest=dest, action="append", default=None, metavar="KEY=VALUE", help=text)
        else:
            parser.add_argument(flag, dest=dest, default=None, metavar=field.name.upper(), help=text)


def given(args: argparse.Namespace, cls: type, prefix: str = "", skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line, as a nested mapping."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in skip or not field.init or not field.metadata.get("flag", True):
            continue
        tp, name = hints[field.name], prefix + field.name
        if dataclasses.is_dataclass(tp):
            inner = given(args, tp, f"{name}.")
            if inner:
                out[field.name] = inner
            continue
        value = getattr(args, name.replace(".", "__"), None)
        if value is None:
            continue
        if typing.get_origin(tp) is dict or tp is dict:
            value = key_values(value, flag="--" + name.replace("_", "-"))
        elif isinstance(value, str) and value.lower() in ("none", "unset") and type(None) in typing.get_args(tp):
            value = None
        out[field.name] = value
    return out


def config_from_args(cls: type, args: argparse.Namespace, base: dict[str, Any] | None = None, prefix: str = "",
                     skip: tuple[str, ...] = (), **extra: Any):
    """``cls`` from ``base`` (a mapping: defaults or a config file), the given flags, then ``extra``."""
    return from_dict(cls, merge(merge(base or {}, given(args, cls, prefix, skip)), extra))


def key_values(items: list[str], flag: str = "--task-opt") -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


# -- options every command shares ---------------------------------------------------------------------
def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="torch device for optimizees and optimizers (default: cpu)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="floating-point type (default: float32)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (and for the SR search) (default: torch's choice, usually one per core)")
    p.add_argument("--storage", default=None,
                   help="storage root for outputs (default: $L2O_STORAGE, else ~/.l2o/storage)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")


def add_task(p: argparse.ArgumentParser, default: str | None = "mnist_mlp") -> None:
    from l2o.tasks import TASK_NAMES

    p.add_argument("--task", default=None, choices=TASK_NAMES,
                   help=f"optimizee (default: {default or 'the checkpoint task'})")
    p.add_argument("--task-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the task's config, e.g. batch_size=64, hidden=30,30, activation=tanh, "
                        "init_std=0.01 (repeatable)")
    p.add_argument("--data-root", default=None, help="dataset folder (default: $L2O_DATA, else ~/.l2o/data)")
    p.add_argument("--offline", action="store_true", help="never try to download datasets")
    p.set_defaults(task_default=default)


def task_spec(args: argparse.Namespace, base: dict[str, Any] | None = None):
    """The ``TaskSpec`` of ``--task``/``--task-opt`` over ``base`` (a checkpoint's or a config file's task)."""
    from l2o.tasks import TaskSpec

    base = base or {}
    name = args.task or base.get("name") or args.task_default
    options = dict(base.get("options") or {}) if name == base.get("name") else {}
    options.update(key_values(args.task_opt))
    if name != "quadratic":
        if args.data_root:
            options["data_root"] = args.data_root
        if args.offline:
            options["download"] = False
    return TaskSpec(name, options)

