"""Command-line options made from the fields of a config dataclass, so that each default is
written once: in the dataclass.

A field ``wait_s: float = field(default=60.0, metadata={"help": "..."})`` becomes
``--wait-s``, parsed as a float into ``args.wait_s``, its help the field's followed by
"(default 60)". What the field alone does not say, an ``Option`` says: another flag name,
choices, a metavar, the unit the command line counts in (``scale``), or a default of the
command's own where it differs from the dataclass on purpose. ``from_args`` builds the
dataclass back from the parsed options.

The annotation gives the type: ``int``, ``float``, ``str``, ``Path`` (each ``| None`` too);
``bool`` is a switch (``--name`` sets a False default, ``--no-name`` clears a True one); an
``enum.Enum`` takes its members' values; ``frozenset[T]``, ``tuple[T, ...]`` or ``list[T]`` is
a repeatable option. A field without a default makes a required option.

>>> from dataclasses import dataclass, field
>>> @dataclass(frozen=True)
... class Wait:
...     wait_s: float = field(default=60.0, metadata={"help": "how long to wait"})
...     tries: int = field(default=3, metadata={"help": "attempts"})
>>> p = argparse.ArgumentParser(prog="x")
>>> add_options(p, Wait, Option("wait_s", "--wait-minutes", scale=60), "tries")
>>> from_args(Wait, p.parse_args(["--wait-minutes", "2"]))
Wait(wait_s=120.0, tries=3)
>>> for a in p._actions[1:]:
...     print(*a.option_strings, a.metavar, a.help, sep=" | ")
--wait-minutes | WAIT_MINUTES | how long to wait (default 1)
--tries | TRIES | attempts (default 3)
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import sys
import types
import typing
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["FIELD_DEFAULT", "Option", "add_options", "field_of", "from_args", "value"]

T = TypeVar("T")


class _FieldDefault:
    def __repr__(self) -> str:
        return "FIELD_DEFAULT"


#: ``Option.default`` when the option takes the field's default (the usual case).
FIELD_DEFAULT: Any = _FieldDefault()

_COLLECTIONS = (frozenset, tuple, list)


@dataclass(frozen=True)
class Option:
    """How one field of a config dataclass appears on the command line, where the field alone
    does not say: each attribute left as is takes what the field implies.

    ``field``: the dataclass field, also the attribute of the parsed arguments.
    ``flag``: the option string (default ``--field-name``; ``--no-field-name`` for a bool field
    that defaults to True).
    ``help``: replaces the field's ``metadata["help"]``.
    ``default``: the command's own default, in the field's units, where it differs from the
    dataclass's on purpose (the one place that says so).
    ``scale``: field units per command-line unit (60 for minutes on the command line of a
    field in seconds); the help shows the default in command-line units.
    ``type``: parses one command-line string into the field's value, instead of the type the
    annotation names.
    ``dest``: the attribute of the parsed arguments (default the field's name), for a command
    with two dataclasses that share a field name; ``from_args`` does not read it.
    """

    field: str
    flag: str | None = None
    help: str | None = None
    default: Any = FIELD_DEFAULT
    choices: Sequence[Any] | None = None
    metavar: str | None = None
    scale: float = 1
    type: Callable[[str], Any] | None = None
    dest: str | None = None


# Which field each option was made from, for the test that the command line's defaults are
# the dataclasses' (weak: parsers are built per call of ``deploy.cli.main``).
_FIELDS: weakref.WeakKeyDictionary[argparse.Action, tuple[type, Option]] = (
    weakref.WeakKeyDictionary()
)


class _Repeat(argparse.Action):
    """argparse's ``append``, except that given values replace the default instead of adding
    to it (``append`` would keep a non-empty default's items in front of the given ones)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:  # fmt: skip
        given = getattr(namespace, self.dest, None)
        if given is None or given is self.default:
            given = []
        setattr(namespace, self.dest, [*given, values])


def add_options(p: argparse.ArgumentParser | Any, cls: type, *specs: str | Option) -> None:
    """Add one option to ``p`` (a parser or an argument group) per field of the dataclass
    ``cls`` named in ``specs``, in that order.

    Raises TypeError for a field ``cls`` does not have, one without help (neither
    ``metadata["help"]`` nor ``Option.help``), or one whose type the command line cannot parse
    without ``Option.type``.
    """
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for spec in specs:
        opt = Option(spec) if isinstance(spec, str) else spec
        f = by_name.get(opt.field)
        if f is None:
            raise TypeError(f"{cls.__name__} has no field {opt.field!r}")
        hint = _hint(cls, f)
        flag = _flag(f, hint, opt)
        action = p.add_argument(flag, **_argparse_kwargs(cls, f, hint, opt, flag))
        _FIELDS[action] = (cls, opt)


def from_args(cls: type[T], args: argparse.Namespace, **more: Any) -> T:
    """An instance of the dataclass ``cls`` from every field of it that ``args`` holds (the
    options ``add_options`` made), ``more`` given beside or instead; the other fields keep
    their defaults. Raises what ``cls`` raises for values it refuses (ValueError)."""
    given = vars(args)
    values = {f.name: value(cls, f.name, given[f.name])
              for f in dataclasses.fields(cls) if f.name in given}  # fmt: skip
    return cls(**(values | more))


def value(cls: type, name: str, parsed: Any) -> Any:
    """What the field ``name`` of ``cls`` holds for a parsed option value: a repeatable
    option's list as the field's collection type; anything else as parsed."""
    origin = typing.get_origin(_hint(cls, _field(cls, name)))
    return origin(parsed) if origin in _COLLECTIONS and parsed is not None else parsed


def field_of(action: argparse.Action) -> tuple[type, Option] | None:
    """The dataclass and ``Option`` an option was made from; None for one written by hand."""
    return _FIELDS.get(action)


def _field(cls: type, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def _hint(cls: type, f: dataclasses.Field) -> Any:
    """The field's annotation as an object, ``X | None`` as ``X``. Resolved one field at a time:
    ``typing.get_type_hints`` would resolve them all, and fail on names imported only for type
    checkers."""
    hint = f.type
    if isinstance(hint, str):  # ``from __future__ import annotations``
        hint = eval(hint, vars(sys.modules[cls.__module__]))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            hint = args[0]
    return hint


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _flag(f: dataclasses.Field, hint: Any, opt: Option) -> str:
    if opt.flag is not None:
        return opt.flag
    name = f.name.replace("_", "-")
    return f"--no-{name}" if hint is bool and _default(f) is True else f"--{name}"


def _argparse_kwargs(
    cls: type, f: dataclasses.Field, hint: Any, opt: Option, flag: str
) -> dict[str, Any]:
    default = _default(f) if opt.default is FIELD_DEFAULT else opt.default
    text = opt.help or f.metadata.get("help")
    if not text:
        raise TypeError(f"{cls.__name__}.{f.name} has no help for the command line: give it "
                        "field(metadata={'help': ...}) or Option(help=...)")  # fmt: skip
    kwargs: dict[str, Any] = {"dest": opt.dest or f.name, "help": text.replace("%", "%%")}
    if hint is bool and opt.type is None:
        return kwargs | {"action": "store_false" if default else "store_true", "default": default}
    if default is dataclasses.MISSING:
        kwargs["required"] = True
    else:
        kwargs["default"] = default
        if default is not None and not (isinstance(default, _COLLECTIONS) and not default):
            kwargs["help"] += f" (default {_shown(default, opt.scale)})"
    origin = typing.get_origin(hint)
    if origin in _COLLECTIONS and opt.type is None:
        # Repeatable: the first use replaces the default, later ones add to it.
        hint = typing.get_args(hint)[0]
        kwargs |= {"action": _Repeat, "default": list(default or ())}
        kwargs["help"] += " (repeatable)"
    kwargs["type"] = opt.type or _parse_as(cls, f, hint, opt.scale)
    if opt.choices is not None:
        kwargs["choices"] = opt.choices
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        kwargs["choices"] = list(hint)
        kwargs["metavar"] = "{" + ",".join(str(m.value) for m in hint) + "}"
    if opt.metavar is not None:
        kwargs["metavar"] = opt.metavar
    elif "metavar" not in kwargs:  # named after the flag, as argparse does, not the field
        kwargs["metavar"] = flag.removeprefix("--").replace("-", "_").upper()
    return kwargs


def _parse_as(cls: type, f: dataclasses.Field, hint: Any, scale: float) -> Callable[[str], Any]:
    if not (isinstance(hint, type) and issubclass(hint, int | float | str | Path | enum.Enum)):
        raise TypeError(f"{cls.__name__}.{f.name}: the command line cannot parse {f.type}; "
                        "give Option(type=...)")  # fmt: skip
    if scale == 1:
        return hint

    def scaled(text: str) -> Any:
        return hint(text) * scale

    scaled.__name__ = hint.__name__  # argparse's error names it: "invalid float value"
    return scaled


def _shown(default: Any, scale: float) -> str:
    """A default as the help shows it, in command-line units."""
    if isinstance(default, enum.Enum):
        return str(default.value)
    if isinstance(default, _COLLECTIONS):
        return " ".join(_shown(v, 1) for v in default)
    if isinstance(default, int | float) and not isinstance(default, bool):
        shown = default / scale if scale != 1 else default
        if isinstance(shown, float) and shown.is_integer() and abs(shown) < 1e15:
            shown = int(shown)
        return str(shown) if isinstance(shown, int) else f"{shown:g}"
    return str(default)
